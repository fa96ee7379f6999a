/**
 * safetensors reader: an 8-byte little-endian header length, a JSON header naming every tensor's dtype, shape and
 * byte range, then the raw little-endian data. Tensor names follow vgg_face_dag (`conv1_1.weight`, `fc6.bias`, ...);
 * layouts are PyTorch's (conv OIHW, fc (out, in) reading C,H,W) and conv1_1 expects RGB.
 * F32 tensors are viewed in place (the header is padded so the data is aligned); F16, BF16 and F64 are converted.
 */
import { open, readFile } from 'node:fs/promises';
import { fileError, formatError, VggFaceError } from '../errors.js';
import { assembleWeightSet, type FoundLayer } from './canonical.js';
import { bfloat16ToFloat32, float16ToFloat32 } from './half.js';
import { float32View, float64ToFloat32, tensor } from './layout.js';
import type { Topology } from './topology.js';
import { LAYER_NAMES, type WeightReader, type WeightSet } from './types.js';

/** Larger headers are refused before they are read: the real file's header is under 2 kB. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Byte width of every dtype the format defines (others are refused as unknown). */
const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};
/** The dtypes weights may have, with the name `inspect` shows. */
const FLOAT_DTYPES: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64' };

export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

export const safetensorsReader: WeightReader = {
  id: 'safetensors',
  description: 'safetensors (vgg_face_dag tensor names; F32, F16, BF16 or F64)',
  sniff(head, size) {
    return sniffSafetensors(head, size);
  },
  async read(path) {
    let bytes: Buffer;
    try {
      // The header length is checked before the file is read whole: a hostile one fails fast on any file size.
      const fh = await open(path, 'r');
      try {
        const prefix = Buffer.alloc(8);
        const { bytesRead } = await fh.read(prefix, 0, 8, 0);
        checkHeaderLength(prefix.subarray(0, bytesRead), (await fh.stat()).size, path);
      } finally {
        await fh.close();
      }
      bytes = await readFile(path);
    } catch (err) {
      if (err instanceof VggFaceError) throw err;
      throw fileError(path, err);
    }
    return parseSafetensors(bytes, path).weights;
  },
};

/**
 * A safetensors file starts with a little-endian u64 header length followed by a JSON object. The length is not
 * checked against the file here, so that an oversized one reaches the reader and gets its own message.
 */
export function sniffSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < 10 || size < 10) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const length = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (length < 2) return false;
  if (head[8] !== 0x7b /* { */) return false;
  const next = head[9];
  return (
    next === 0x22 /* " */ || next === 0x7d /* } */ || next === 0x20 || next === 0x0a || next === 0x0d || next === 0x09
  );
}

/** Reads and validates the header: every tensor's range lies in the data and no two overlap. */
/** Checks the 8-byte header length against the limit and the file size; returns it. */
function checkHeaderLength(prefix: Uint8Array, fileSize: number, path: string): number {
  if (prefix.byteLength < 8)
    throw formatError(path, `truncated: ${fileSize} bytes, a safetensors file starts with an 8-byte header length`);
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (length > MAX_HEADER_BYTES) {
    throw new VggFaceError(
      'E_UNSAFE',
      `${path}: safetensors header length ${length} exceeds ` +
        `the ${MAX_HEADER_BYTES}-byte limit (corrupt or hostile file)`,
      { input: path },
    );
  }
  if (8 + length > fileSize) {
    throw formatError(
      path,
      `truncated: safetensors header length ${length} runs past the end of the file (${fileSize} bytes)`,
    );
  }
  return length;
}

export function parseSafetensorsHeader(
  bytes: Uint8Array,
  path: string,
): { entries: SafetensorsEntry[]; dataStart: number } {
  const length = checkHeaderLength(bytes.subarray(0, 8), bytes.byteLength, path);
  const dataStart = 8 + length;
  const dataSize = bytes.byteLength - dataStart;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (err) {
    throw formatError(path, `safetensors header is not valid UTF-8 JSON: ${(err as Error).message}`, err);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw formatError(path, 'safetensors header must be a JSON object of tensors');
  }
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue; // free-form strings; nothing in it changes the weights
    const where = `tensor ${JSON.stringify(name)}`;
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (info === null || typeof info !== 'object')
      throw formatError(path, `${where}: expected an object with dtype, shape and data_offsets`);
    if (typeof info.dtype !== 'string') throw formatError(path, `${where}: dtype must be a string`);
    const width = DTYPE_BYTES[info.dtype];
    if (width === undefined) {
      throw formatError(
        path,
        `${where}: unknown dtype ${JSON.stringify(info.dtype)}; safetensors ` +
          `defines ${Object.keys(DTYPE_BYTES).join(', ')}`,
      );
    }
    const isIndex = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    if (!Array.isArray(info.shape) || !info.shape.every(isIndex))
      throw formatError(path, `${where}: shape must be an array of non-negative integers`);
    const offsets = info.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      throw formatError(path, `${where}: data_offsets must be [begin, end], two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataSize) {
      throw formatError(
        path,
        `${where}: data_offsets [${begin}, ${end}] out of range: the data section has ${dataSize} bytes`,
      );
    }
    const shape = info.shape as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * width) {
      throw formatError(
        path,
        `${where}: shape [${shape.join(', ')}] of ${info.dtype} needs ${count * width} ` +
          `bytes, data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    entries.push({ name, dtype: info.dtype, shape, begin: dataStart + begin, end: dataStart + end });
  }
  const byStart = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  let last: SafetensorsEntry | undefined; // the range reaching furthest so far
  for (const b of byStart) {
    const a = last;
    if (!a || b.end > a.end) last = b;
    if (a && b.begin < a.end) {
      throw formatError(
        path,
        `tensors ${JSON.stringify(a.name)} and ${JSON.stringify(b.name)} overlap (data_offsets ` +
          `[${a.begin - dataStart}, ${a.end - dataStart}] and [${b.begin - dataStart}, ${b.end - dataStart}])`,
      );
    }
  }
  return { entries, dataStart };
}

/** Float32 data of one tensor: a view when it is F32 and aligned, a conversion otherwise. */
function tensorData(bytes: Uint8Array, e: SafetensorsEntry, path: string): Float32Array {
  const count = e.shape.reduce((a, b) => a * b, 1);
  const where = `${path}: tensor ${e.name}`;
  switch (e.dtype) {
    case 'F32':
      return float32View(bytes, e.begin, count, where);
    case 'F16':
      return float16ToFloat32(bytes, e.begin, count, where);
    case 'BF16':
      return bfloat16ToFloat32(bytes, e.begin, count, where);
    case 'F64':
      return float64ToFloat32(bytes, e.begin, count, where);
    default:
      throw formatError(
        path,
        `tensor ${JSON.stringify(e.name)} has dtype ${e.dtype}; weights ` +
          `must be ${Object.keys(FLOAT_DTYPES).join(', ')}`,
      );
  }
}

/** Orders names like `features.2` before `features.10`. */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

export function parseSafetensors(bytes: Uint8Array, path: string): { weights: WeightSet; topology: Topology } {
  const { entries } = parseSafetensorsHeader(bytes, path);
  const byName = new Map(entries.map((e) => [e.name, e]));
  // A weight-bearing layer is a `<prefix>.weight` with its `<prefix>.bias`; other tensors are not weights of the
  // network.
  const prefixes = entries.filter((e) => e.name.endsWith('.weight')).map((e) => e.name.slice(0, -'.weight'.length));
  const vggNames = new Set<string>(LAYER_NAMES);
  // vgg_face_dag names sort by network position; others (torchvision's features.N / classifier.N, ...) put the
  // conv weights (4-D) before the fc weights (2-D), each group in natural order: VGG-Face is 13 convs then 3 fcs.
  const rank = (p: string) => (byName.get(`${p}.weight`)!.shape.length === 4 ? 0 : 1);
  const order = prefixes.every((p) => vggNames.has(p))
    ? prefixes.sort((a, b) => LAYER_NAMES.indexOf(a as never) - LAYER_NAMES.indexOf(b as never))
    : prefixes.sort((a, b) => rank(a) - rank(b) || naturalCompare(a, b));
  const dtypes = new Set<string>();
  const found: FoundLayer[] = order.map((prefix) => {
    const w = byName.get(`${prefix}.weight`)!;
    const b = byName.get(`${prefix}.bias`);
    if (!b) throw new VggFaceError('E_TOPOLOGY', `${path}: ${prefix}.weight has no ${prefix}.bias`, { input: path });
    for (const e of [w, b]) {
      if (!FLOAT_DTYPES[e.dtype])
        throw formatError(
          path,
          `tensor ${JSON.stringify(e.name)} has dtype ${e.dtype}; weights ` +
            `must be ${Object.keys(FLOAT_DTYPES).join(', ')}`,
        );
      dtypes.add(FLOAT_DTYPES[e.dtype]);
    }
    if (w.shape.length !== 4 && w.shape.length !== 2) {
      throw new VggFaceError(
        'E_TOPOLOGY',
        `${path}: ${w.name} has shape ${w.shape.join('x')}; expected a conv ` +
          'weight (out, in, kh, kw) or an fc weight (out, in)',
        { input: path },
      );
    }
    if (b.shape.length !== 1)
      throw new VggFaceError('E_TOPOLOGY', `${path}: ${b.name} has shape ${b.shape.join('x')}; a bias is 1-D`, {
        input: path,
      });
    return {
      sourceName: prefix,
      kind: w.shape.length === 4 ? 'conv' : 'fc',
      weight: tensor(w.shape, tensorData(bytes, w, path)),
      bias: tensor(b.shape, tensorData(bytes, b, path)),
    };
  });
  return assembleWeightSet(
    {
      format: 'safetensors',
      layout: 'safetensors, vgg_face_dag names (conv out x in x kh x kw, fc out x in)',
      sourceDtype: [...dtypes].join('+') || 'float32',
      inputChannelOrder: 'RGB',
    },
    found,
    path,
  );
}
