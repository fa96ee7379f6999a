/**
 * Caffe `.caffemodel` reader: NetParameter V1 (`layers`, field 2, enum types, legacy num/channels/height/width,
 * as in the official 2015 VGG-Face release) and V2 (`layer`, field 100, string types, BlobShape).
 * Blob data is viewed in place when 4-byte aligned (packed `data`); unpacked floats and `double_data` are copied.
 */
import { readFile } from 'node:fs/promises';
import { fileError, formatError, VggFaceError } from '../errors.js';
import { peekTags, ProtoReader, WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, type ProtoField } from '../proto/reader.js';
import { assembleWeightSet, type FoundLayer } from './canonical.js';
import { float32View, float64ToFloat32, tensor } from './layout.js';
import type { WeightReader, WeightSet } from './types.js';
import type { Topology } from './topology.js';

// caffe.proto field numbers
const NET = { name: 1, layers: 2, input: 3, inputDim: 4, layer: 100 } as const;
const V1 = { bottom: 2, top: 3, name: 4, type: 5, blobs: 6, convParam: 10 } as const;
const V2 = { name: 1, type: 2, bottom: 3, top: 4, blobs: 7, convParam: 106 } as const;
const BLOB = { num: 1, channels: 2, height: 3, width: 4, data: 5, shape: 7, doubleData: 8 } as const;
const CONV_PARAM = {
  numOutput: 1,
  pad: 3,
  kernelSize: 4,
  group: 5,
  stride: 6,
  padH: 9,
  padW: 10,
  kernelH: 11,
  kernelW: 12,
  strideH: 13,
  strideW: 14,
} as const;

/** V1LayerParameter.LayerType values that matter here. */
const V1_TYPES: Record<number, string> = {
  0: 'None',
  1: 'Accuracy',
  3: 'Concat',
  4: 'Convolution',
  5: 'Data',
  6: 'Dropout',
  8: 'Flatten',
  12: 'ImageData',
  14: 'InnerProduct',
  15: 'LRN',
  17: 'Pooling',
  18: 'ReLU',
  19: 'Sigmoid',
  20: 'Softmax',
  21: 'SoftmaxWithLoss',
  22: 'Split',
  23: 'TanH',
  29: 'MemoryData',
  33: 'Slice',
  39: 'Deconvolution',
};

interface RawBlob {
  dims: number[];
  data: Float32Array;
  dtype: 'float32' | 'float64';
}

interface RawLayer {
  name: string;
  type: string;
  blobs: RawBlob[];
  conv?: { pad: number[]; stride: number[]; group: number };
}

export const caffeReader: WeightReader = {
  id: 'caffe',
  description: 'Caffe .caffemodel (NetParameter V1 or V2)',
  sniff(head) {
    return sniffCaffe(head);
  },
  async read(path) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw fileError(path, err);
    }
    return parseCaffeModel(bytes, path).weights;
  },
};

/**
 * A caffemodel starts with NetParameter fields: `name` (1, string), `input` (3), `input_dim` (4), then
 * `layers` (2) or `layer` (100), all length-delimited except input_dim. ONNX starts with ir_version (1, varint).
 */
export function sniffCaffe(head: Uint8Array): boolean {
  for (const t of peekTags(head)) {
    if ((t.no === NET.layers || t.no === NET.layer) && t.wire === WIRE_LEN) return true;
    const allowed = t.no === NET.name || t.no === NET.input ? t.wire === WIRE_LEN : t.no === NET.inputDim;
    if (!allowed) return false;
  }
  return false;
}

export function parseCaffeModel(
  bytes: Uint8Array,
  path: string,
): { weights: WeightSet; topology: Topology; layers: RawLayer[]; version: 1 | 2 } {
  if (bytes.byteLength === 0) throw formatError(path, 'empty file (0 bytes), expected a Caffe NetParameter');
  const r = new ProtoReader(bytes, path);
  const v1: ProtoField[] = [];
  const v2: ProtoField[] = [];
  for (const f of r.fields()) {
    if (f.no === NET.layers && f.wire === WIRE_LEN) v1.push(f);
    else if (f.no === NET.layer && f.wire === WIRE_LEN) v2.push(f);
  }
  if (v1.length === 0 && v2.length === 0) {
    throw formatError(path, 'not a Caffe model: a protobuf with no NetParameter layers (field 2) or layer (field 100)');
  }
  const version: 1 | 2 = v2.length > 0 ? 2 : 1;
  const layers = (version === 2 ? v2 : v1).map((f, i) => parseLayer(r, f, version, i, path));
  const found: FoundLayer[] = [];
  for (const layer of layers) {
    if (layer.blobs.length === 0) continue;
    if (layer.type === 'Convolution') found.push(convLayer(layer, path));
    else if (layer.type === 'InnerProduct') found.push(fcLayer(layer, path));
    else
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: layer ${layer.name} of type ${layer.type} has weights; VGG-Face ` +
          'has weights only in Convolution and InnerProduct layers',
        { input: path },
      );
  }
  const dtypes = new Set(layers.flatMap((l) => l.blobs.map((b) => b.dtype)));
  const { weights, topology } = assembleWeightSet(
    {
      format: 'caffe',
      layout:
        version === 1
          ? 'Caffe NetParameter V1 (layers, enum types, num/channels/height/width)'
          : 'Caffe NetParameter V2 (layer, string types, BlobShape)',
      sourceDtype: [...dtypes].join('+') || 'float32',
      inputChannelOrder: 'BGR',
    },
    found,
    path,
  );
  return { weights, topology, layers, version };
}

function parseLayer(r: ProtoReader, lf: ProtoField, version: 1 | 2, index: number, path: string): RawLayer {
  const ids = version === 1 ? V1 : V2;
  let name = `#${index + 1}`;
  let type = 'unknown';
  const blobFields: ProtoField[] = [];
  let convField: ProtoField | undefined;
  for (const f of r.fields(lf.start, lf.end)) {
    if (f.no === ids.name && f.wire === WIRE_LEN) name = r.string(f);
    else if (f.no === ids.type) type = version === 1 ? (V1_TYPES[f.value] ?? `enum ${f.value}`) : r.string(f);
    else if (f.no === ids.blobs && f.wire === WIRE_LEN) blobFields.push(f);
    else if (f.no === ids.convParam && f.wire === WIRE_LEN) convField = f;
  }
  const where = `${path}: layer ${name}`;
  const blobs = blobFields.map((bf, i) => parseBlob(r, bf, `${where} blob ${i}`));
  const layer: RawLayer = { name, type, blobs };
  if (convField) layer.conv = parseConvParam(r, convField);
  return layer;
}

function parseConvParam(r: ProtoReader, f: ProtoField): RawLayer['conv'] {
  const pad: number[] = [];
  const stride: number[] = [];
  let group = 1;
  for (const c of r.fields(f.start, f.end)) {
    if (c.no === CONV_PARAM.pad || c.no === CONV_PARAM.padH || c.no === CONV_PARAM.padW) pad.push(...r.varints(c));
    else if (c.no === CONV_PARAM.stride || c.no === CONV_PARAM.strideH || c.no === CONV_PARAM.strideW)
      stride.push(...r.varints(c));
    else if (c.no === CONV_PARAM.group) group = c.value;
  }
  return { pad, stride, group };
}

function parseBlob(r: ProtoReader, bf: ProtoField, where: string): RawBlob {
  const legacy: Record<number, number> = {};
  let shape: number[] | undefined;
  const floatFields: ProtoField[] = [];
  const doubleFields: ProtoField[] = [];
  for (const f of r.fields(bf.start, bf.end)) {
    switch (f.no) {
      case BLOB.num:
      case BLOB.channels:
      case BLOB.height:
      case BLOB.width:
        legacy[f.no] = f.value;
        break;
      case BLOB.shape:
        shape = [];
        for (const d of r.fields(f.start, f.end)) if (d.no === 1) shape.push(...r.varints(d));
        break;
      case BLOB.data:
        floatFields.push(f);
        break;
      case BLOB.doubleData:
        doubleFields.push(f);
        break;
    }
  }
  const dims = shape ?? [
    legacy[BLOB.num] ?? 1,
    legacy[BLOB.channels] ?? 1,
    legacy[BLOB.height] ?? 1,
    legacy[BLOB.width] ?? 1,
  ];
  const expected = dims.reduce((a, b) => a * b, 1);
  let data: Float32Array;
  let dtype: RawBlob['dtype'] = 'float32';
  if (floatFields.length > 0) {
    data = readFloats(r, floatFields, 4, where);
  } else if (doubleFields.length > 0) {
    data = readFloats(r, doubleFields, 8, where);
    dtype = 'float64';
  } else {
    throw formatError(where, `has no data (neither data nor double_data), shape ${dims.join('x')}`);
  }
  if (data.length !== expected) {
    throw formatError(
      where,
      `shape ${dims.join('x')} needs ${expected} values, blob has ${data.length} (truncated or corrupt file)`,
    );
  }
  return { dims, data, dtype };
}

/**
 * Protobuf puts packed floats wherever the framing before them ends, so 3 blobs in 4 start off a 4-byte boundary and
 * could only be copied (fc6 alone is 411 MB). Instead the floats are moved back by 1-3 bytes over their own tag and
 * length, already parsed and never read again, so the float32 view needs no copy. The bytes are ours (read from the
 * file for this parse); the data moved is only this field's. Returns the new offset of the data.
 */
function alignInPlace(bytes: Uint8Array, f: ProtoField): number {
  const shift = (bytes.byteOffset + f.start) % 4;
  if (shift === 0 || f.start - f.tagStart < shift) return f.start;
  bytes.copyWithin(f.start - shift, f.start, f.end);
  return f.start - shift;
}

/** Packed (one length-delimited field) or unpacked (one fixed field per value) repeated float/double. */
function readFloats(r: ProtoReader, fields: ProtoField[], width: 4 | 8, where: string): Float32Array {
  const packedWire = WIRE_LEN;
  const unpackedWire = width === 4 ? WIRE_FIXED32 : WIRE_FIXED64;
  if (fields.length === 1 && fields[0].wire === packedWire) {
    const f = fields[0];
    const n = f.end - f.start;
    if (n % width !== 0)
      throw formatError(
        where,
        `packed ${width === 4 ? 'float' : 'double'} data of ${n} bytes is not a multiple of ${width}`,
      );
    if (width === 8) return float64ToFloat32(r.bytes, f.start, n / width, where);
    return float32View(r.bytes, alignInPlace(r.bytes, f), n / 4, where);
  }
  // Unpacked, or several packed chunks (legal protobuf): gather into one array.
  let count = 0;
  for (const f of fields) {
    if (f.wire === packedWire) count += (f.end - f.start) / width;
    else if (f.wire === unpackedWire) count += 1;
    else throw formatError(where, `float data with wire type ${f.wire}`);
  }
  const out = new Float32Array(count);
  const dv = new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength);
  let k = 0;
  for (const f of fields) {
    for (let p = f.start; p < f.end; p += width)
      out[k++] = width === 4 ? dv.getFloat32(p, true) : dv.getFloat64(p, true);
  }
  return out;
}

function convLayer(layer: RawLayer, path: string): FoundLayer {
  const [w, b] = layer.blobs;
  if (!b) throw new VggFaceError('E_TOPOLOGY', `${path}: conv layer ${layer.name} has no bias blob`, { input: path });
  if (w.dims.length !== 4)
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${path}: conv layer ${layer.name} weight must be 4-D (out, in, kh, kw), file has ${w.dims.join('x')}`,
      { input: path },
    );
  if (layer.conv) {
    const bad = (values: number[], want: number) => values.length > 0 && values.some((v) => v !== want);
    if (bad(layer.conv.pad, 1))
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: conv layer ${layer.name} must have pad 1, file has pad ${layer.conv.pad.join(',')}`,
        { input: path },
      );
    if (bad(layer.conv.stride, 1))
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: conv layer ${layer.name} must have stride 1, file has stride ${layer.conv.stride.join(',')}`,
        { input: path },
      );
    if (layer.conv.group !== 1)
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: conv layer ${layer.name} must have group 1, file has ${layer.conv.group}`,
        { input: path },
      );
  }
  return {
    sourceName: layer.name,
    kind: 'conv',
    weight: tensor(w.dims, w.data),
    bias: tensor([b.data.length], b.data),
  };
}

function fcLayer(layer: RawLayer, path: string): FoundLayer {
  const [w, b] = layer.blobs;
  if (!b) throw new VggFaceError('E_TOPOLOGY', `${path}: fc layer ${layer.name} has no bias blob`, { input: path });
  // V1: 1x1xOUTxIN; V2: OUTxIN. Any leading 1s are dropped.
  const dims = [...w.dims];
  while (dims.length > 2 && dims[0] === 1) dims.shift();
  if (dims.length !== 2)
    throw new VggFaceError(
      'E_TOPOLOGY',
      `${path}: fc layer ${layer.name} weight must be (out, in), file has ${w.dims.join('x')}`,
      { input: path },
    );
  return { sourceName: layer.name, kind: 'fc', weight: tensor(dims, w.data), bias: tensor([b.data.length], b.data) };
}
