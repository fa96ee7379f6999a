import { Command } from 'commander';
import { META } from '../../onnx/contract.js';
import { readOnnxInfo } from '../../onnx/inspect.js';
import { cpuFeatures, describeCpu, needsExactInt8Kernels, NON_SATURATING_WEIGHT_LIMIT } from '../../runtime/cpu.js';
import { detectFormat, formatIds, readWeights } from '../../weights/formats.js';
import { identityLine } from '../../weights/identity.js';
import { isFullSize } from '../../weights/topology.js';
import { VGG_FACE_MEAN_RGB, type FormatId } from '../../weights/types.js';
import * as check from '../../validate.js';
import type { CommandContext } from '../context.js';

const ONNX_TYPES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  6: 'int32',
  7: 'int64',
  10: 'float16',
  11: 'float64',
};

export function inspectCommand(ctx: CommandContext): Command {
  return new Command('inspect')
    .summary('show the format, layers, shapes and channel order of a weight file or converted model')
    .argument('<file>', 'weight file in any supported layout, or a .onnx model')
    .option('--format <format>', `force the layout: ${formatIds().join(', ')}`)
    .option('--json', 'print JSON')
    .action(async (file: string, flags: { format?: string; json?: boolean }) => {
      const format =
        flags.format === undefined
          ? await detectFormat(file)
          : (check.oneOf('--format', flags.format, formatIds()) as FormatId);
      if (format === 'onnx') {
        const info = readOnnxInfo(file);
        const int8 = int8Report(info.metadata);
        const identity = info.metadata[META.identity] ?? null; // null: converted before identities
        if (flags.json)
          return void ctx.stdout.write(
            JSON.stringify({ file, format, identity, ...info, ...(int8 ? { int8: int8.json } : {}) }) + '\n',
          );
        const nameWidth = Math.max(16, ...info.initializers.map((i) => i.name.length + 1));
        const lines = [
          `file:        ${file}`,
          `format:      onnx (IR ${info.irVersion}, producer ${info.producer || 'unknown'}, ` +
            `opsets ${info.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')})`,
          `inputs:      ${info.inputs.join(', ')}`,
          `outputs:     ${info.outputs.join(', ')}`,
          identityLine(identity, 13),
          ...(int8 ? [`int8:        ${int8.text}`] : []),
          'metadata:',
          ...Object.entries(info.metadata).map(([k, v]) => `  ${k} = ${v}`),
          'initializers:',
          ...info.initializers.map(
            (i) =>
              `  ${i.name.padEnd(nameWidth)} ` +
              `${(ONNX_TYPES[i.dataType] ?? `type ${i.dataType}`).padEnd(8)} ${i.dims.join('x')}`,
          ),
        ];
        return void ctx.stdout.write(lines.join('\n') + '\n');
      }
      const { weights, topology } = await readWeights(file, format);
      const layers = weights.layers.map((l) => ({
        name: l.name,
        kind: l.kind,
        source: l.sourceName,
        weight: l.weight.shape,
        bias: l.bias.shape,
      }));
      const mean = weights.mean ?? VGG_FACE_MEAN_RGB;
      const report = {
        file,
        format,
        layout: weights.layout,
        dtype: weights.sourceDtype,
        inputChannelOrder: weights.inputChannelOrder,
        meanRgb: mean,
        meanSource: weights.mean ? 'file' : 'published',
        identity: weights.identity!,
        parameters: topology.parameters,
        fullSize: isFullSize(topology),
        topology: { conv: topology.conv, fc6: topology.fc6, fc7: topology.fc7, fc8: topology.fc8 },
        layers,
      };
      if (flags.json) return void ctx.stdout.write(JSON.stringify(report) + '\n');
      const lines = [
        `file:          ${file}`,
        `format:        ${format} (${weights.layout})`,
        `dtype:         ${weights.sourceDtype}`,
        `channel order: ${weights.inputChannelOrder} (what conv1_1 expects)`,
        `mean (RGB):    ${mean.join(', ')} (${report.meanSource})`,
        `parameters:    ${topology.parameters.toLocaleString('en-US')} ` +
          `(${report.fullSize ? 'full-size VGG-Face' : 'narrow copy of the VGG-Face topology'})`,
        `descriptor:    fc7, ${topology.fc7}-d; fc8 scores ${topology.fc8} identities`,
        identityLine(weights.identity, 15),
        'layers (canonical layout: conv out x in x kh x kw, fc out x in with fc6 inputs C,H,W):',
        ...layers.map(
          (l) =>
            `  ${l.name.padEnd(8)} ${l.kind.padEnd(4)} ${l.weight.join('x').padEnd(16)} ` +
            `bias ${String(l.bias[0]).padEnd(6)} (${l.source})`,
        ),
      ];
      ctx.stdout.write(lines.join('\n') + '\n');
    });
}

/** For an int8 model: its weight range and which kernels it gets on this CPU (see runtime/cpu.ts). */
function int8Report(metadata: Readonly<Record<string, string>>): { text: string; json: object } | undefined {
  if (metadata[META.precision] !== 'int8') return undefined;
  const weightLimit = Number(metadata[META.weightLimit] ?? 127);
  const cpu = cpuFeatures();
  const exactKernels = needsExactInt8Kernels(weightLimit, cpu);
  const range = `weights -${weightLimit}..${weightLimit}`;
  const text = exactKernels
    ? `${range} (builder 1): this CPU's int8 kernels (${describeCpu(cpu)}, ` +
      'no VNNI) can saturate them, so vggface runs ' +
      `this model with ONNX Runtime's exact, slower kernels; convert the weights again for a model that needs none`
    : weightLimit > NON_SATURATING_WEIGHT_LIMIT
      ? `${range} (builder 1): exact on this CPU (${describeCpu(cpu)}), saturates on x86 CPUs without VNNI`
      : `${range}: the same integer sums on every CPU (no int16 saturation ` +
        `without VNNI); this CPU: ${describeCpu(cpu)}`;
  return { text, json: { weightLimit, cpu: describeCpu(cpu), exactKernels } };
}
