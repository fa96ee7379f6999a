import { threadsOption } from '../face-options.js';
import { Command } from 'commander';
import { convertModel } from '../../onnx/convert-model.js';
import { PRECISIONS, PREPROCESSING, type Precision, type Preprocessing } from '../../onnx/contract.js';
import { CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD, type CalibrationMethod } from '../../onnx/calibrate.js';
import { BUILTIN_CALIBRATION_IMAGES, directoryCalibrationSet } from '../../onnx/calibration-set.js';
import { formatIds } from '../../weights/formats.js';
import { identityLine } from '../../weights/identity.js';
import type { FormatId } from '../../weights/types.js';
import * as check from '../../validate.js';
import { usageError } from '../../errors.js';
import type { CommandContext } from '../context.js';
import { progressBar } from '../progress.js';

interface ConvertFlags {
  output?: string;
  format?: string;
  preprocessing: string;
  precision: string;
  calibration?: string;
  calibrationMethod?: string;
  threads?: string;
  json?: boolean;
}

export function convertCommand(ctx: CommandContext): Command {
  return new Command('convert')
    .summary('convert weights in any layout to a self-contained ONNX model (fp32, fp16 or int8)')
    .description(
      'Reads VGG-Face weights in any supported layout (detected by content) and writes ' +
        'one ONNX file that runs unchanged in any ONNX Runtime.\n' +
        'Input "image": uint8 [batch, 224, 224, 3] RGB. Outputs: fc6, fc7_pre, ' +
        'fc7, fc8, descriptor (fc7 L2-normalised).\n\n' +
        'fp32 keeps the weights as published. fp16 stores them as float16 (half ' +
        'the file); ONNX Runtime casts them to float32 ' +
        'when it loads the model and computes in fp32. int8 is static ' +
        'quantization (QDQ): int8 weights, one scale per output ' +
        'channel, and uint8 activations whose ranges are calibrated by ' +
        'running the fp32 model on the --calibration images; ' +
        'a quarter of the file and about 3.5x faster on a CPU with AVX-512 VNNI. ' +
        'Without --calibration, a built-in set ' +
        `of ${BUILTIN_CALIBRATION_IMAGES} synthetic images is used (works offline); ` +
        'a directory of 20-200 face crops like the ones you will describe is ' +
        'better. Check an int8 model with vggface fidelity.',
    )
    .argument('<weights>', 'weight file')
    .requiredOption('-o, --output <file>', 'the .onnx file to write (written to a temporary file, then renamed)')
    .option('--format <format>', `force the weight layout: ${formatIds().join(', ')}`)
    .option('--preprocessing <mode>', `preprocessing inside the graph: ${PREPROCESSING.join(' or ')}`, 'caffe')
    .option('--precision <p>', `weight precision: ${PRECISIONS.join(', ')}`, 'fp32')
    .option(
      '--calibration <dir>',
      'int8: directory of calibration images (every image file in it; default: the built-in synthetic set)',
    )
    .option(
      '--calibration-method <m>',
      'int8: how activation ranges are ' +
        `chosen: ${CALIBRATION_METHODS.join(', ')} (default ${DEFAULT_CALIBRATION_METHOD})`,
    )
    .option('--threads <n>', 'int8: ONNX Runtime threads for calibration (default: number of cores)')
    .option('--json', 'print the report as JSON')
    .action(async (weights: string, flags: ConvertFlags) => {
      if (!flags.output) throw usageError('--output is required');
      const format =
        flags.format === undefined ? undefined : (check.oneOf('--format', flags.format, formatIds()) as FormatId);
      if (format === 'onnx') throw usageError('--format onnx: the input is already an ONNX model', '--format');
      const preprocessing = check.oneOf('--preprocessing', flags.preprocessing, PREPROCESSING) as Preprocessing;
      const precision = check.oneOf('--precision', flags.precision, PRECISIONS) as Precision;
      const method =
        flags.calibrationMethod === undefined
          ? undefined
          : (check.oneOf('--calibration-method', flags.calibrationMethod, CALIBRATION_METHODS) as CalibrationMethod);
      const threads = threadsOption(flags);
      if (precision !== 'int8' && (flags.calibration !== undefined || method !== undefined)) {
        throw usageError(
          `--calibration and --calibration-method apply to --precision int8, not ${precision}`,
          flags.calibration !== undefined ? '--calibration' : '--calibration-method',
        );
      }
      const calibrationSet =
        flags.calibration === undefined ? undefined : await directoryCalibrationSet(flags.calibration);
      const bar =
        precision === 'int8'
          ? progressBar('Calibrating', calibrationSet?.count ?? BUILTIN_CALIBRATION_IMAGES, { threshold: 1 })
          : undefined;
      let report;
      try {
        report = await convertModel(weights, flags.output, {
          format,
          preprocessing,
          precision,
          calibrationSet,
          calibrationMethod: method,
          threads,
          onCalibrationProgress: (done) => bar?.update(done),
        });
      } finally {
        bar?.stop();
      }
      if (flags.json) {
        ctx.stdout.write(JSON.stringify(report) + '\n');
      } else {
        const t = report.topology;
        const c = report.calibration;
        ctx.stdout.write(
          `${report.output}: ${report.format} ` +
            `(${report.layout}), ${t.parameters.toLocaleString('en-US')} parameters, ` +
            `descriptor ${t.fc7}-d, ${report.preprocessing} ` +
            `preprocessing, ${report.precision}, source sha256 ${report.sha256.slice(0, 16)}\n` +
            `  ${identityLine(report.identity, 10)}\n` +
            (c ? `  calibrated (${c.method}) on ${c.source}, sha256 ${c.sha256.slice(0, 16)}\n` : ''),
        );
      }
    });
}
