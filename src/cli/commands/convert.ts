import { Command } from 'commander';
import { convertWeightsToOnnx } from '../../onnx/convert.js';
import { PREPROCESSING, type Preprocessing } from '../../onnx/builder.js';
import { formatIds } from '../../weights/formats.js';
import type { FormatId } from '../../weights/types.js';
import * as check from '../../validate.js';
import { usageError } from '../../errors.js';
import type { CommandContext } from '../context.js';

interface ConvertFlags {
  output?: string;
  format?: string;
  preprocessing: string;
  json?: boolean;
}

export function convertCommand(ctx: CommandContext): Command {
  return new Command('convert')
    .summary('convert weights in any layout to a self-contained ONNX model')
    .description(
      'Reads VGG-Face weights in any supported layout (detected by content) and writes one ONNX file that runs unchanged in any ONNX Runtime.\n' +
        'Input "image": uint8 [batch, 224, 224, 3] RGB. Outputs: fc6, fc7_pre, fc7, fc8, descriptor (fc7 L2-normalised).',
    )
    .argument('<weights>', 'weight file')
    .requiredOption('-o, --output <file>', 'the .onnx file to write (written to a temporary file, then renamed)')
    .option('--format <format>', `force the weight layout: ${formatIds().join(', ')}`)
    .option('--preprocessing <mode>', `preprocessing inside the graph: ${PREPROCESSING.join(' or ')}`, 'caffe')
    .option('--json', 'print the report as JSON')
    .action(async (weights: string, flags: ConvertFlags) => {
      if (!flags.output) throw usageError('--output is required');
      const format = flags.format === undefined ? undefined : (check.oneOf('--format', flags.format, formatIds()) as FormatId);
      if (format === 'onnx') throw usageError('--format onnx: the input is already an ONNX model', '--format');
      const preprocessing = check.oneOf('--preprocessing', flags.preprocessing, PREPROCESSING) as Preprocessing;
      const report = await convertWeightsToOnnx(weights, flags.output, { format, preprocessing });
      if (flags.json) {
        ctx.stdout.write(JSON.stringify(report) + '\n');
      } else {
        const t = report.topology;
        ctx.stdout.write(
          `${report.output}: ${report.format} (${report.layout}), ${t.parameters.toLocaleString('en-US')} parameters, ` +
            `descriptor ${t.fc7}-d, ${report.preprocessing} preprocessing, source sha256 ${report.sha256.slice(0, 16)}\n`,
        );
      }
    });
}
