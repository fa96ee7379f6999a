/**
 * PyTorch tensors as `torch.save` pickles them: the allowlisted globals that rebuild them, the storages they view,
 * and turning (storage, offset, sizes, strides) into float32 data: a zero-copy view when the tensor is
 * contiguous, float32, little-endian and aligned; a copy otherwise (other dtypes, byte order, strides).
 */
import { formatError } from '../errors.js';
import { float32View, gatherStrided } from './layout.js';
import type { GlobalHandler } from './pickle.js';
import { PickleGlobal } from './pickle.js';
import { halfToNumber } from '../util/float16.js';

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16';

const STORAGE_TYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
};

export const ELEMENT_SIZE: Record<TorchDtype, number> = { float32: 4, float64: 8, float16: 2, bfloat16: 2 };

/** A storage a tensor refers to: `key` names its bytes (zip entry `data/<key>`, or the legacy file's storage key). */
export interface StorageRef {
  readonly dtype: TorchDtype;
  readonly key: string;
  /** Elements before this storage's first element, when it is a view of another (legacy format). */
  readonly elementOffset: number;
  /** Elements the file declares for it. */
  readonly numel: number;
}

export class TorchTensor {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly size: readonly number[],
    readonly stride: readonly number[],
  ) {}

  get numel(): number {
    return this.size.reduce((a, b) => a * b, 1);
  }
}

function isIntArray(v: unknown): v is readonly number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

/**
 * The globals a state dict needs, and nothing else. `pathForErrors` names the file in messages.
 */
export function torchGlobals(path: string, source: string): Map<string, GlobalHandler> {
  const bad = (what: string) => formatError(path, `${source}: ${what}`);
  const rebuildTensor = (args: readonly unknown[]) => {
    // v2: (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]); v1: the first four
    const [storage, offset, size, stride] = args;
    if (args.length < 4 || !(storage && typeof storage === 'object' && 'dtype' in storage))
      throw bad('_rebuild_tensor_v2 without a storage');
    if (!Number.isSafeInteger(offset) || (offset as number) < 0)
      throw bad(`tensor with storage offset ${String(offset)}`);
    if (!isIntArray(size) || !isIntArray(stride) || size.length !== stride.length) {
      throw bad(`tensor with sizes ${JSON.stringify(size)} and strides ${JSON.stringify(stride)}`);
    }
    return new TorchTensor(storage as StorageRef, offset as number, [...size], [...stride]);
  };
  const handlers: [string, GlobalHandler][] = [
    [
      'collections.OrderedDict',
      {
        call: (args) => {
          const m = new Map<unknown, unknown>();
          const init = args[0];
          if (init instanceof Map) for (const [k, v] of init) m.set(k, v);
          else if (Array.isArray(init))
            for (const kv of init) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
          return m;
        },
      },
    ],
    ['torch._utils._rebuild_tensor_v2', { call: rebuildTensor }],
    ['torch._utils._rebuild_tensor', { call: rebuildTensor }], // PyTorch < 0.4: (storage, offset, size, stride)
    [
      'torch._utils._rebuild_parameter',
      {
        call: (args) => {
          if (!(args[0] instanceof TorchTensor)) throw bad('_rebuild_parameter without a tensor');
          return args[0];
        },
      },
    ],
    ...Object.keys(STORAGE_TYPES).map((name): [string, GlobalHandler] => [`torch.${name}`, {}]),
  ];
  return new Map(handlers);
}

/** The dtype of a storage class global, or undefined when it is not one. */
export function storageDtype(v: unknown): TorchDtype | undefined {
  return v instanceof PickleGlobal && v.module === 'torch' ? STORAGE_TYPES[v.name] : undefined;
}

function isContiguous(size: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expected) return false;
    expected *= size[d];
  }
  return true;
}

/**
 * The tensor's values as float32 in row-major order. `bytes` holds the storage (from its first element);
 * `littleEndian` is the file's byte order. Checks that the storage holds every element the tensor reads.
 */
export function tensorToFloat32(
  t: TorchTensor,
  bytes: Uint8Array,
  littleEndian: boolean,
  path: string,
  name: string,
): Float32Array {
  const { dtype } = t.storage;
  const elem = ELEMENT_SIZE[dtype];
  const numel = t.numel;
  const available = Math.floor(bytes.byteLength / elem) - t.storage.elementOffset;
  let last = t.storageOffset;
  for (let d = 0; d < t.size.length; d++) last += (t.size[d] - 1) * t.stride[d];
  if (numel > 0 && last >= available) {
    throw formatError(
      path,
      `tensor ${name} (${dtype} ${t.size.join('x')}, strides ${t.stride.join(',')}, offset ${t.storageOffset}) reads ` +
        `element ${last} of storage ${t.storage.key}, which ` +
        `holds ${Math.max(0, available)} (truncated or corrupt file)`,
    );
  }
  const base = t.storage.elementOffset + t.storageOffset;
  if (dtype === 'float32' && littleEndian && isContiguous(t.size, t.stride))
    return float32View(bytes, base * 4, numel, path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const scratch = new DataView(new ArrayBuffer(4));
  const read: (i: number) => number =
    dtype === 'float32'
      ? (i) => dv.getFloat32(i * 4, littleEndian)
      : dtype === 'float64'
        ? (i) => dv.getFloat64(i * 8, littleEndian)
        : dtype === 'float16'
          ? (i) => halfToNumber(dv.getUint16(i * 2, littleEndian))
          : (i) => {
              // bfloat16: the high half of a float32
              scratch.setUint32(0, dv.getUint16(i * 2, littleEndian) << 16);
              return scratch.getFloat32(0);
            };
  return gatherStrided(t.size, t.stride, base, read);
}
