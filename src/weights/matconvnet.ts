/**
 * MatConvNet reader: a SimpleNN network saved as a MAT-file v5, in either of its published shapes:
 * - `vgg-face.mat`: top-level variables `layers` (cell array of layer structs) and `meta`
 * (`normalization.averageImage`, `classes`);
 * - `vgg_face.mat`: one top-level struct `net` with `layers` and either `meta` or (older MatConvNet) `normalization`.
 * Conv layers hold `weights = {filters, biases}` (older files: fields `filters`, `biases`); filters are H x W x IN x
 * OUT,
 * column-major. fc6-fc8 are stored as convs (7x7x512x4096, 1x1x4096x4096, 1x1x4096x2622). conv1_1 expects RGB.
 * A v7.3 file (HDF5 inside) is refused with the command that converts it.
 */
import { formatError, VggFaceError } from '../errors.js';
import { assembleWeightSet, type FoundLayer } from './canonical.js';
import { colMajorHwioToOihwInPlace, tensor } from './layout.js';
import {
  isMat5,
  isMat73,
  matToFloat32,
  matToNumbers,
  matTypeName,
  readMatFile,
  type MatNumeric,
  type MatValue,
} from './mat5.js';
import type { Topology } from './topology.js';
import type { WeightReader, WeightSet } from './types.js';

/** Layer types that carry no weights and leave the weight-bearing layers' computation as VGG-Face has it. */
const WEIGHTLESS = new Set(['relu', 'pool', 'dropout', 'softmax', 'softmaxloss', 'loss']);
/** fc6 follows the fifth max-pool; MatConvNet stores it and fc7, fc8 as convolutions. */
const POOLS_BEFORE_FC = 5;

export const matconvnetReader: WeightReader = {
  id: 'matconvnet',
  description: 'MatConvNet .mat (MAT-file v5: layers + meta variables, or a struct net)',
  sniff(head) {
    return isMat5(head) || isMat73(head);
  },
  async read(path) {
    return (await parseMatConvNet(path)).weights;
  },
};

function topologyError(path: string, message: string): VggFaceError {
  return new VggFaceError('E_TOPOLOGY', `${path}: ${message}`, { input: path });
}

/** The fields of a 1x1 struct, or undefined when `v` is not one. */
function struct1(v: MatValue | undefined): ReadonlyMap<string, MatValue> | undefined {
  return v && v.kind === 'struct' && v.items.length === 1 ? v.items[0] : undefined;
}

function text(v: MatValue | undefined): string | undefined {
  return v && v.kind === 'char' ? v.text : undefined;
}

function numbers(v: MatValue | undefined): number[] | undefined {
  return v && v.kind === 'numeric' ? matToNumbers(v.real) : undefined;
}

export async function parseMatConvNet(
  path: string,
): Promise<{ weights: WeightSet; topology: Topology; variant: string }> {
  const mat = await readMatFile(path);
  const vars = mat.variables;
  let layers: MatValue | undefined;
  let normalization: ReadonlyMap<string, MatValue> | undefined;
  let variant: string;
  if (vars.has('layers')) {
    layers = vars.get('layers');
    normalization = struct1(struct1(vars.get('meta'))?.get('normalization'));
    variant = 'variables layers + meta';
  } else if (vars.has('net')) {
    const net = struct1(vars.get('net'));
    if (!net)
      throw formatError(
        path,
        `variable net is a ${matTypeName(vars.get('net'))}, expected a 1x1 struct with a field layers`,
      );
    layers = net.get('layers');
    normalization = struct1(struct1(net.get('meta'))?.get('normalization')) ?? struct1(net.get('normalization'));
    variant = 'struct net';
  } else {
    const names = [...vars.keys()].map((n) => `${n} (${matTypeName(vars.get(n))})`).join(', ') || 'no variables';
    throw formatError(
      path,
      'not a MatConvNet network: expected variables layers and meta (vgg-face.mat) ' +
        `or a struct net (vgg_face.mat), the file has ${names}`,
    );
  }
  if (layers?.kind === 'struct' && layers.fieldNames.includes('params')) {
    throw formatError(
      path,
      'MatConvNet DagNN networks (layers as a struct array with params) are not ' +
        'supported; save the SimpleNN form (layers as a cell array)',
    );
  }
  if (layers?.kind !== 'cell')
    throw formatError(path, `layers is a ${matTypeName(layers)}, expected a cell array of layer structs`);

  const found: FoundLayer[] = [];
  const dtypes = new Set<string>();
  let pools = 0;
  layers.items.forEach((item, i) => {
    const layer = struct1(item);
    if (!layer) throw formatError(path, `layers{${i + 1}} is a ${matTypeName(item)}, expected a 1x1 struct`);
    const name = text(layer.get('name')) || `layers{${i + 1}}`;
    const type = text(layer.get('type'));
    if (type === undefined) throw formatError(path, `layer ${name} has no type`);
    if (type === 'pool') pools++;
    if (WEIGHTLESS.has(type)) return;
    if (type !== 'conv')
      throw topologyError(
        path,
        `layer ${name} has type ${type}, which VGG-Face does not have (expected conv, relu, pool, dropout, softmax)`,
      );
    const kind = pools >= POOLS_BEFORE_FC ? 'fc' : 'conv';
    const { filters, biases } = convParams(layer, name, path);
    const [kh, kw, cin, cout] = [...filters.dims, 1, 1, 1, 1].slice(0, 4);
    if (filters.dims.length > 4)
      throw topologyError(path, `layer ${name} filters are ${filters.dims.join('x')}, expected H x W x IN x OUT`);
    const biasCount = biases.dims.reduce((a, b) => a * b, 1);
    if (biasCount !== cout)
      throw topologyError(
        path,
        `layer ${name} has ${biasCount} biases for ${cout} filters (${filters.dims.join('x')})`,
      );
    checkGeometry(layer, name, kind, path);
    for (const v of [filters, biases])
      dtypes.add(v.className === 'single' ? 'float32' : v.className === 'double' ? 'float64' : v.className);
    const canonical = colMajorHwioToOihwInPlace(
      matToFloat32(filters.real, `${path}: layer ${name} filters`),
      kh,
      kw,
      cin,
      cout,
    );
    found.push({
      sourceName: name,
      kind,
      weight: kind === 'conv' ? canonical : tensor([cout, cin * kh * kw], canonical.data),
      bias: tensor([cout], matToFloat32(biases.real, `${path}: layer ${name} biases`)),
    });
  });
  const { weights, topology } = assembleWeightSet(
    {
      format: 'matconvnet',
      layout:
        'MatConvNet SimpleNN, MAT-file v5 ' +
        `(${variant}${mat.compressed ? ', zlib-compressed' : ''}; filters H x W x IN x OUT column-major)`,
      sourceDtype: [...dtypes].join('+') || 'float32',
      inputChannelOrder: 'RGB',
      ...(normalization ? meanOf(normalization, path) : {}),
    },
    found,
    path,
  );
  return { weights, topology, variant };
}

function convParams(
  layer: ReadonlyMap<string, MatValue>,
  name: string,
  path: string,
): { filters: MatNumeric; biases: MatNumeric } {
  const weights = layer.get('weights');
  let filters: MatValue | undefined;
  let biases: MatValue | undefined;
  if (weights !== undefined) {
    if (weights.kind !== 'cell' || weights.items.length < 2)
      throw topologyError(
        path,
        `layer ${name} weights is a ${matTypeName(weights)}, expected a cell {filters, biases}`,
      );
    [filters, biases] = weights.items;
  } else {
    filters = layer.get('filters');
    biases = layer.get('biases');
  }
  for (const [what, v] of [
    ['filters', filters],
    ['biases', biases],
  ] as const) {
    if (v?.kind !== 'numeric')
      throw topologyError(
        path,
        `layer ${name} ${what} is ${v ? `a ${matTypeName(v)}` : 'missing'}, expected a numeric array`,
      );
    if (v.imag) throw topologyError(path, `layer ${name} ${what} are complex`);
  }
  return { filters: filters as MatNumeric, biases: biases as MatNumeric };
}

/** VGG-Face convs are 3x3, pad 1, stride 1; the fc layers stored as convs have no padding. */
function checkGeometry(layer: ReadonlyMap<string, MatValue>, name: string, kind: 'conv' | 'fc', path: string): void {
  const pad = numbers(layer.get('pad'));
  const stride = numbers(layer.get('stride'));
  const wantPad = kind === 'conv' ? 1 : 0;
  if (pad?.some((p) => p !== wantPad))
    throw topologyError(
      path,
      `layer ${name} has pad ${pad.join(' ')}; ` +
        `VGG-Face ${kind === 'conv' ? 'convolutions pad by 1' : 'fc layers have no padding'}`,
    );
  if (stride?.some((s) => s !== 1))
    throw topologyError(path, `layer ${name} has stride ${stride.join(' ')}; VGG-Face layers have stride 1`);
}

/** meta.normalization.averageImage: 3 channel means, or an H x W x 3 image whose channel means are used. RGB. */
function meanOf(
  normalization: ReadonlyMap<string, MatValue>,
  path: string,
): { mean?: readonly [number, number, number] } {
  const average = normalization.get('averageImage');
  if (!average || (average.kind === 'numeric' && average.dims.some((d) => d === 0))) return {};
  if (average.kind !== 'numeric')
    throw formatError(path, `normalization.averageImage is a ${matTypeName(average)}, expected a numeric array`);
  const values = matToFloat32(average.real, `${path}: averageImage`);
  const channels = average.dims.length >= 3 ? average.dims[2] : values.length;
  if (channels !== 3 || values.length % 3 !== 0) {
    throw formatError(
      path,
      `normalization.averageImage is ${average.dims.join('x')}; expected 3 channel means or an H x W x 3 image`,
    );
  }
  const plane = values.length / 3; // column-major: each channel is one contiguous plane
  const mean = [0, 1, 2].map((c) => {
    let sum = 0;
    for (let i = c * plane; i < (c + 1) * plane; i++) sum += values[i];
    return sum / plane;
  });
  return { mean: [mean[0], mean[1], mean[2]] };
}
