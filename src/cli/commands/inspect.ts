import { Command } from 'commander';
import { readOnnxInfo } from '../../onnx/inspect.js';
import { detectFormat, formatIds, readWeights } from '../../weights/formats.js';
import { isFullSize } from '../../weights/topology.js';
import { VGG_FACE_MEAN_RGB, type FormatId } from '../../weights/types.js';
import * as check from '../../validate.js';
import type { CommandContext } from '../context.js';

const ONNX_TYPES: Record<number, string> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 10: 'float16', 11: 'float64' };

export function inspectCommand(ctx: CommandContext): Command {
  return new Command('inspect')
    .summary('show the format, layers, shapes and channel order of a weight file or converted model')
    .argument('<file>', 'weight file in any supported layout, or a .onnx model')
    .option('--format <format>', `force the layout: ${formatIds().join(', ')}`)
    .option('--json', 'print JSON')
    .action(async (file: string, flags: { format?: string; json?: boolean }) => {
      const format = flags.format === undefined ? await detectFormat(file) : (check.oneOf('--format', flags.format, formatIds()) as FormatId);
      if (format === 'onnx') {
        const info = readOnnxInfo(file);
        if (flags.json) return void ctx.stdout.write(JSON.stringify({ file, format, ...info }) + '\n');
        const nameWidth = Math.max(16, ...info.initializers.map((i) => i.name.length + 1));
        const lines = [
          `file:        ${file}`,
          `format:      onnx (IR ${info.irVersion}, producer ${info.producer || 'unknown'}, opsets ${info.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')})`,
          `inputs:      ${info.inputs.join(', ')}`,
          `outputs:     ${info.outputs.join(', ')}`,
          'metadata:',
          ...Object.entries(info.metadata).map(([k, v]) => `  ${k} = ${v}`),
          'initializers:',
          ...info.initializers.map((i) => `  ${i.name.padEnd(nameWidth)} ${(ONNX_TYPES[i.dataType] ?? `type ${i.dataType}`).padEnd(8)} ${i.dims.join('x')}`),
        ];
        return void ctx.stdout.write(lines.join('\n') + '\n');
      }
      const { weights, topology } = await readWeights(file, format);
      const layers = weights.layers.map((l) => ({ name: l.name, kind: l.kind, source: l.sourceName, weight: l.weight.shape, bias: l.bias.shape }));
      const mean = weights.mean ?? VGG_FACE_MEAN_RGB;
      const report = {
        file,
        format,
        layout: weights.layout,
        dtype: weights.sourceDtype,
        inputChannelOrder: weights.inputChannelOrder,
        meanRgb: mean,
        meanSource: weights.mean ? 'file' : 'published',
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
        `parameters:    ${topology.parameters.toLocaleString('en-US')} (${report.fullSize ? 'full-size VGG-Face' : 'narrow copy of the VGG-Face topology'})`,
        `descriptor:    fc7, ${topology.fc7}-d; fc8 scores ${topology.fc8} identities`,
        'layers (canonical layout: conv out x in x kh x kw, fc out x in with fc6 inputs C,H,W):',
        ...layers.map((l) => `  ${l.name.padEnd(8)} ${l.kind.padEnd(4)} ${l.weight.join('x').padEnd(16)} bias ${String(l.bias[0]).padEnd(6)} (${l.source})`),
      ];
      ctx.stdout.write(lines.join('\n') + '\n');
    });
}
