/**
 * Torch7 `.t7` reader: maps the modules of a deserialized torch.save file (weights/torch7-file.ts), as the official
 * `VGG_FACE.t7` (an `nn.Sequential` of 40 modules) has them, to the canonical weight set: containers expanded,
 * weightless modules skipped, convolutions (SpatialConvolutionMM's 2-D weights reshaped) and nn.Linear layers taken
 * in order; anything else is refused as not VGG-Face.
 */
import { readFile } from 'node:fs/promises';
import { fileError, formatError, VggFaceError } from '../errors.js';
import { assembleWeightSet, type FoundLayer } from './canonical.js';
import { tensor } from './layout.js';
import type { Topology } from './topology.js';
import { LuaTable, readTorch7, sniffTorch7, StorageViews, type LuaValue, type TorchTensor } from './torch7-file.js';
import type { ReadOptions, WeightReader, WeightSet } from './types.js';

/** Modules that carry no weights and do not change what the weight-bearing layers compute. */
const WEIGHTLESS = new Set([
  'nn.ReLU',
  'cudnn.ReLU',
  'nn.Threshold',
  'nn.SpatialMaxPooling',
  'cudnn.SpatialMaxPooling',
  'nn.View',
  'nn.Reshape',
  'nn.Dropout',
  'nn.SoftMax',
  'cudnn.SoftMax',
  'nn.LogSoftMax',
  'cudnn.LogSoftMax',
]);
const CONV_CLASSES = new Set(['nn.SpatialConvolutionMM', 'nn.SpatialConvolution', 'cudnn.SpatialConvolution']);
const FC_CLASSES = new Set(['nn.Linear']);

interface Module {
  readonly className: string;
  readonly fields: LuaTable;
  /** Position in the network, e.g. "module 3" or "module 2.5" inside a nested container. */
  readonly where: string;
}

export interface ParsedTorch7 {
  weights: WeightSet;
  topology: Topology;
  longSize: 4 | 8;
}

export const torch7Reader: WeightReader = {
  id: 'torch7',
  description: 'Torch7 .t7 (torch.save binary of an nn.Sequential)',
  sniff(head) {
    return sniffTorch7(head);
  },
  async read(path, options) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw fileError(path, err);
    }
    return parseTorch7(bytes, path, options).weights;
  },
};

export function parseTorch7(bytes: Uint8Array, path: string, options: ReadOptions = {}): ParsedTorch7 {
  const { root, longSize } = readTorch7(bytes, path, options.longSize);
  const modules = flattenModules(root, path);
  const views = new StorageViews(bytes, path);
  const found: FoundLayer[] = [];
  const dtypes = new Set<string>();
  for (const m of modules) {
    if (WEIGHTLESS.has(m.className)) continue;
    const isConv = CONV_CLASSES.has(m.className);
    if (!isConv && !FC_CLASSES.has(m.className)) {
      const weighted = m.fields.get('weight') ? ' with weights' : '';
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: ${m.where} is ${m.className}${weighted}, which VGG-Face does not have (expected ` +
          'convolutions, nn.Linear, ReLU, max-pooling, View, Dropout and SoftMax)',
        { input: path },
      );
    }
    const weight = tensorField(m, 'weight', path);
    const bias = tensorField(m, 'bias', path);
    for (const t of [weight, bias])
      dtypes.add(t.element === 'double' ? 'float64' : t.element === 'half' ? 'float16' : 'float32');
    const name = `${m.where} (${m.className})`;
    const w = views.data(weight, `${path}: ${name} weight`);
    const b = views.data(bias, `${path}: ${name} bias`);
    if (bias.sizes.length !== 1)
      throw new VggFaceError('E_TOPOLOGY', `${path}: ${name} bias has shape ${bias.sizes.join('x')}; a bias is 1-D`, {
        input: path,
      });
    if (isConv) {
      checkConvParams(m, path, name);
      found.push({
        sourceName: name,
        kind: 'conv',
        weight: tensor(convShape(m, weight, path, name), w),
        bias: tensor(bias.sizes, b),
      });
    } else {
      if (weight.sizes.length !== 2)
        throw new VggFaceError(
          'E_TOPOLOGY',
          `${path}: ${name} weight has shape ${weight.sizes.join('x')}; nn.Linear weights are (out, in)`,
          { input: path },
        );
      found.push({ sourceName: name, kind: 'fc', weight: tensor(weight.sizes, w), bias: tensor(bias.sizes, b) });
    }
  }
  const { weights, topology } = assembleWeightSet(
    {
      format: 'torch7',
      layout: `Torch7 binary, nn.Sequential (${longSize}-byte longs)`,
      sourceDtype: [...dtypes].join('+') || 'float32',
      inputChannelOrder: 'BGR',
    },
    found,
    path,
  );
  return { weights, topology, longSize };
}

function fieldsOf(value: LuaValue, where: string, path: string): Module {
  if (!value || typeof value !== 'object' || value.kind !== 'object') {
    throw new VggFaceError('E_TOPOLOGY', `${path}: ${where} is ${describe(value)}, expected an nn module`, {
      input: path,
    });
  }
  if (!(value.content instanceof LuaTable)) {
    throw formatError(path, `${where} (${value.className}) has no field table`);
  }
  return { className: value.className, fields: value.content, where };
}

/** The network's modules in order, containers expanded. */
function flattenModules(root: LuaValue, path: string): Module[] {
  const out: Module[] = [];
  const visit = (m: Module, depth: number) => {
    const children = m.fields.get('modules');
    if (children === undefined || children === null) return void out.push(m);
    if (m.className !== 'nn.Sequential') {
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: ${m.where} is a ${m.className} container; VGG-Face is a plain nn.Sequential`,
        { input: path },
      );
    }
    if (!(children instanceof LuaTable))
      throw formatError(path, `${m.where} (nn.Sequential): modules is ${describe(children)}, expected a table`);
    if (depth > 8)
      throw new VggFaceError('E_TOPOLOGY', `${path}: containers nested deeper than 8 levels`, { input: path });
    for (let i = 1; i <= children.entries.size; i++) {
      const child = children.get(i);
      if (child === undefined)
        throw formatError(
          path,
          `${m.where} (nn.Sequential): modules has ${children.entries.size} entries but no module ${i}`,
        );
      const where = depth === 0 ? `module ${i}` : `${m.where}.${i}`;
      visit(fieldsOf(child, where, path), depth + 1);
    }
  };
  visit(fieldsOf(root, 'the saved object', path), 0);
  return out;
}

function describe(v: LuaValue | undefined): string {
  if (v === undefined || v === null) return 'nil';
  if (typeof v !== 'object') return `a ${typeof v}`;
  if (v.kind === 'object' || v.kind === 'tensor' || v.kind === 'storage') return `a ${v.className}`;
  return 'a table';
}

function tensorField(m: Module, field: 'weight' | 'bias', path: string): TorchTensor {
  const v = m.fields.get(field);
  if (!v || typeof v !== 'object' || v.kind !== 'tensor') {
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${path}: ${m.where} (${m.className}) has no ${field} tensor (${describe(v)})`,
      { input: path },
    );
  }
  return v;
}

function numberField(m: Module, field: string): number | undefined {
  const v = m.fields.get(field);
  return typeof v === 'number' ? v : undefined;
}

/**
 * SpatialConvolutionMM keeps its weight as (out, in*kh*kw) (columns in in, kh, kw order); reshape to (out, in, kh, kw).
 */
function convShape(m: Module, weight: TorchTensor, path: string, name: string): number[] {
  if (weight.sizes.length === 4) return [...weight.sizes];
  if (weight.sizes.length !== 2)
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${path}: ${name} weight has shape ${weight.sizes.join('x')}; expected (out, in, kh, kw) or (out, in*kh*kw)`,
      { input: path },
    );
  const cin = numberField(m, 'nInputPlane');
  const kh = numberField(m, 'kH');
  const kw = numberField(m, 'kW');
  if (cin === undefined || kh === undefined || kw === undefined) {
    throw formatError(
      path,
      `${name} has a 2-D weight ${weight.sizes.join('x')} but no nInputPlane/kH/kW fields to reshape it`,
    );
  }
  if (cin * kh * kw !== weight.sizes[1]) {
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${path}: ${name} weight ${weight.sizes.join('x')} does not match nInputPlane ${cin} x kH ${kh} x kW ${kw}`,
      { input: path },
    );
  }
  return [weight.sizes[0], cin, kh, kw];
}

function checkConvParams(m: Module, path: string, name: string): void {
  for (const [field, want] of [
    ['padW', 1],
    ['padH', 1],
    ['dW', 1],
    ['dH', 1],
  ] as const) {
    const v = numberField(m, field);
    if (v !== undefined && v !== want) {
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: ${name} has ${field} ${v}; VGG-Face convolutions have ${field} ${want}`,
        { input: path },
      );
    }
  }
}
