/**
 * The Torch7 `.t7` file format: the binary serialization of torch.save (torch/File.lua), deserialized into Lua
 * values (tables, torch objects, tensors over storages), with nothing of VGG-Face in it (weights/torch7.ts maps the
 * modules of the official `VGG_FACE.t7`, an `nn.Sequential` of 40 modules, to the canonical weight set).
 *
 * Every value is a 4-byte type code then its payload: nil, number (float64), string (int length + bytes),
 * boolean (int), table and torch object (an index into the object memo, then - the first time only - the
 * content: a table's key/value pairs, or an object's `V <version>` header, class name and data). Tensors are
 * sizes, strides and a 1-based storage offset (longs) over a storage (a long count then raw elements).
 * Lua functions (serialized bytecode) are refused: reading one would mean running code.
 *
 * `long` is 8 bytes on 64-bit Linux/macOS builds and 4 on Windows builds; the width is given or detected (8 is tried
 * first, then 4).
 */
import { formatError, VggFaceError } from '../errors.js';
import { float16ToFloat32 } from './half.js';
import { halfToNumber } from '../util/float16.js';
import { float64ToFloat32, gatherStrided } from './layout.js';
import type { ReadOptions } from './types.js';

const TYPE = {
  nil: 0,
  number: 1,
  string: 2,
  table: 3,
  torch: 4,
  boolean: 5,
  function: 6,
  legacyRecurFunction: 7,
  recurFunction: 8,
} as const;
/** Deeper nesting than this is refused instead of overflowing the stack (VGG_FACE.t7 nests 5 deep). */
const MAX_DEPTH = 200;
/** Torch tensors have at most a handful of dimensions; TH refuses more than 64 anyway. */
const MAX_DIMS = 64;

export type LuaValue = null | number | string | boolean | LuaTable | TorchObject | TorchTensor | TorchStorage;

/** A Lua table: keys keep their Lua type (the number 1 and the string "1" differ). */
export class LuaTable {
  readonly kind = 'table';
  readonly entries = new Map<unknown, LuaValue>();
  get(key: string | number): LuaValue | undefined {
    return this.entries.get(key);
  }
}

/** An instance of a Lua class (`nn.Linear`, ...), whose fields were serialized as a table. */
export interface TorchObject {
  readonly kind: 'object';
  readonly className: string;
  readonly version: number;
  content: LuaValue;
}

type ElementType = 'byte' | 'char' | 'short' | 'int' | 'long' | 'float' | 'double' | 'half';

export interface TorchStorage {
  readonly kind: 'storage';
  readonly className: string;
  readonly element: ElementType;
  readonly count: number;
  /** Byte offset of the first element in the file. */
  readonly dataOffset: number;
}

export interface TorchTensor {
  readonly kind: 'tensor';
  readonly className: string;
  readonly element: ElementType;
  readonly sizes: readonly number[];
  readonly strides: readonly number[];
  /** 0-based, in elements. */
  readonly offset: number;
  readonly storage: TorchStorage | null;
}

/** torch.<Prefix>Tensor / torch.<Prefix>Storage; CUDA classes are serialized as host data of the same type. */
const ELEMENTS: Record<string, ElementType> = {
  Byte: 'byte',
  Char: 'char',
  Short: 'short',
  Int: 'int',
  Long: 'long',
  Float: 'float',
  Double: 'double',
  Half: 'half',
  Cuda: 'float',
  CudaByte: 'byte',
  CudaChar: 'char',
  CudaShort: 'short',
  CudaInt: 'int',
  CudaLong: 'long',
  CudaDouble: 'double',
  CudaHalf: 'half',
};

function elementBytes(e: ElementType, longSize: 4 | 8): number {
  switch (e) {
    case 'byte':
    case 'char':
      return 1;
    case 'short':
    case 'half':
      return 2;
    case 'int':
    case 'float':
      return 4;
    case 'long':
      return longSize;
    case 'double':
      return 8;
  }
}

/** Parses the object graph; pure (the file bytes are not touched), so a second try with another long width is safe. */
export class Torch7Parser {
  private pos = 0;
  private readonly dv: DataView;
  private readonly memo = new Map<number, LuaValue>();
  private readonly decoder = new TextDecoder('utf-8');

  constructor(
    private readonly bytes: Uint8Array,
    private readonly path: string,
    readonly longSize: 4 | 8,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Reads the one top-level object torch.save wrote. */
  readRoot(): LuaValue {
    return this.readObject(0);
  }

  private fail(problem: string, at = this.pos): VggFaceError {
    return formatError(this.path, `${problem} (byte ${at})`);
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.bytes.byteLength) {
      throw formatError(
        this.path,
        `truncated: ${what} needs ${n} bytes at byte ${this.pos}, the file has ${this.bytes.byteLength}`,
      );
    }
  }

  private int(what: string): number {
    this.need(4, what);
    const v = this.dv.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private long(what: string): number {
    this.need(this.longSize, what);
    let v: number;
    if (this.longSize === 4) {
      v = this.dv.getInt32(this.pos, true);
    } else {
      const lo = this.dv.getUint32(this.pos, true);
      const hi = this.dv.getInt32(this.pos + 4, true);
      v = hi * 2 ** 32 + lo;
      if (!Number.isSafeInteger(v)) throw this.fail(`${what} ${hi}:${lo} is not a plausible 64-bit value`);
    }
    this.pos += this.longSize;
    return v;
  }

  private string(what: string): string {
    const start = this.pos;
    const n = this.int(`${what} length`);
    if (n < 0 || this.pos + n > this.bytes.byteLength) {
      throw formatError(
        this.path,
        `${what} declares ${n} bytes at byte ${start}, ` +
          `only ${this.bytes.byteLength - this.pos} remain (truncated or corrupt file)`,
      );
    }
    const s = this.decoder.decode(this.bytes.subarray(this.pos, this.pos + n));
    this.pos += n;
    return s;
  }

  private readObject(depth: number): LuaValue {
    if (depth > MAX_DEPTH) throw this.fail(`objects nested deeper than ${MAX_DEPTH} levels`);
    const at = this.pos;
    const type = this.int('type code');
    switch (type) {
      case TYPE.nil:
        return null;
      case TYPE.number: {
        this.need(8, 'number');
        const v = this.dv.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
      }
      case TYPE.string:
        return this.string('string');
      case TYPE.boolean:
        return this.int('boolean') === 1;
      case TYPE.table:
      case TYPE.torch: {
        const index = this.int('object index');
        const seen = this.memo.get(index);
        if (seen !== undefined) return seen; // a shared reference: the object was written in full before
        return type === TYPE.table ? this.readTable(index, depth) : this.readTorch(index, depth);
      }
      case TYPE.function:
      case TYPE.legacyRecurFunction:
      case TYPE.recurFunction:
        throw new VggFaceError(
          'E_UNSAFE',
          `${this.path}: contains a serialized Lua function (type ${type}, byte ${at}); ` +
            'functions are refused because loading one runs its code',
          { input: this.path },
        );
      default:
        throw this.fail(
          `unknown Torch7 type code ${type}${this.longSize === 8 ? '' : ' (read with 4-byte longs)'}`,
          at,
        );
    }
  }

  private readTable(index: number, depth: number): LuaTable {
    const table = new LuaTable();
    this.memo.set(index, table);
    const at = this.pos;
    const n = this.int('table size');
    // Each entry takes at least 8 bytes (two type codes): a larger count cannot be genuine.
    if (n < 0 || n * 8 > this.bytes.byteLength - this.pos) {
      throw formatError(
        this.path,
        `table declares ${n} entries at byte ${at}, ` +
          `only ${this.bytes.byteLength - this.pos} bytes remain (truncated or corrupt file)`,
      );
    }
    for (let i = 0; i < n; i++) {
      const key = this.readObject(depth + 1);
      const value = this.readObject(depth + 1);
      table.entries.set(key, value);
    }
    return table;
  }

  private readTorch(index: number, depth: number): LuaValue {
    const header = this.string('class header');
    let version = 0;
    let className = header;
    if (header.startsWith('V ')) {
      version = Number(header.slice(2));
      if (!Number.isInteger(version))
        throw this.fail(`class version header ${JSON.stringify(header)} is not "V <number>"`);
      className = this.string('class name');
    }
    const data = /^torch\.(\w*)(Tensor|Storage)$/.exec(className);
    if (data) {
      const element = ELEMENTS[data[1]];
      if (!element) throw formatError(this.path, `unsupported tensor class ${className}`);
      const value =
        data[2] === 'Tensor' ? this.readTensor(className, element, depth) : this.readStorage(className, element);
      this.memo.set(index, value);
      return value;
    }
    const object: TorchObject = { kind: 'object', className, version, content: null };
    this.memo.set(index, object);
    object.content = this.readObject(depth + 1);
    return object;
  }

  private readStorage(className: string, element: ElementType): TorchStorage {
    const at = this.pos;
    const count = this.long(`${className} size`);
    const width = elementBytes(element, this.longSize);
    const remaining = this.bytes.byteLength - this.pos;
    if (count < 0 || count * width > remaining) {
      throw formatError(
        this.path,
        `${className} at byte ${at} declares ${count} elements (${count * width} bytes), ` +
          `only ${remaining} bytes remain (truncated or corrupt file)`,
      );
    }
    const storage: TorchStorage = { kind: 'storage', className, element, count, dataOffset: this.pos };
    this.pos += count * width;
    return storage;
  }

  private readTensor(className: string, element: ElementType, depth: number): TorchTensor {
    const at = this.pos;
    const dims = this.int(`${className} dimension count`);
    if (dims < 0 || dims > MAX_DIMS) throw this.fail(`${className} declares ${dims} dimensions`, at);
    const sizes: number[] = [];
    const strides: number[] = [];
    for (let i = 0; i < dims; i++) sizes.push(this.long(`${className} size`));
    for (let i = 0; i < dims; i++) strides.push(this.long(`${className} stride`));
    const offset = this.long(`${className} storage offset`) - 1;
    if (sizes.some((s) => s < 0) || strides.some((s) => s < 0) || offset < 0) {
      throw this.fail(
        `${className} has negative sizes, strides or offset (${sizes.join('x')}, ` +
          `strides ${strides.join(',')}, offset ${offset + 1})`,
        at,
      );
    }
    const storage = this.readObject(depth + 1);
    if (storage !== null && (typeof storage !== 'object' || storage.kind !== 'storage')) {
      throw this.fail(`${className}'s storage is not a torch storage`, at);
    }
    if (storage && storage.element !== element) throw this.fail(`${className} has a ${storage.className}`, at);
    const count = sizes.reduce((a, b) => a * b, 1);
    if (dims > 0 && count > 0) {
      const last = offset + sizes.reduce((a, s, i) => a + (s - 1) * strides[i], 0);
      if (!storage || last >= storage.count) {
        throw formatError(
          this.path,
          `${className} at byte ${at} (${sizes.join('x')}, strides ${strides.join(',')}, ` +
            `offset ${offset + 1}) reaches element ${last + 1} of a storage of ${storage?.count ?? 0}`,
        );
      }
    }
    return { kind: 'tensor', className, element, sizes, strides, offset, storage };
  }
}

/**
 * Float32 data for tensors, made once the parse succeeded. Float storages become views of the file bytes; one
 * that is not 4-byte aligned is first moved back by 1-3 bytes in place, over its own already-parsed size field,
 * so even an unaligned file is read without a second copy of its weights. The buffer must be the reader's own.
 */
export class StorageViews {
  private readonly views = new Map<TorchStorage, Float32Array>();

  constructor(
    private readonly bytes: Uint8Array,
    private readonly path: string,
  ) {}

  private floats(s: TorchStorage): Float32Array {
    let view = this.views.get(s);
    if (!view) {
      const start = this.bytes.byteOffset + s.dataOffset;
      const shift = start % 4;
      if (shift !== 0) this.bytes.copyWithin(s.dataOffset - shift, s.dataOffset, s.dataOffset + s.count * 4);
      view = new Float32Array(this.bytes.buffer, start - shift, s.count);
      this.views.set(s, view);
    }
    return view;
  }

  /** The tensor's elements in row-major order, as float32. */
  data(t: TorchTensor, what: string): Float32Array {
    const count = t.sizes.reduce((a, b) => a * b, 1);
    if (t.sizes.length === 0 || count === 0) return new Float32Array(0);
    const s = t.storage!;
    if (t.element !== 'float' && t.element !== 'double' && t.element !== 'half') {
      throw formatError(
        this.path,
        `${what} is a ${t.className}; weights must be FloatTensor, DoubleTensor or HalfTensor`,
      );
    }
    if (isContiguous(t)) {
      if (t.element === 'float') return this.floats(s).subarray(t.offset, t.offset + count);
      if (t.element === 'half') return float16ToFloat32(this.bytes, s.dataOffset + t.offset * 2, count, this.path);
      return float64ToFloat32(this.bytes, s.dataOffset + t.offset * 8, count, this.path);
    }
    // A strided view (transposed, narrowed, expanded): gather it.
    const floats = t.element === 'float' ? this.floats(s) : undefined;
    const dv = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    const get = floats
      ? (i: number) => floats[i]
      : t.element === 'half'
        ? (i: number) => halfToNumber(dv.getUint16(s.dataOffset + i * 2, true))
        : (i: number) => dv.getFloat64(s.dataOffset + i * 8, true);
    return gatherStrided(t.sizes, t.strides, t.offset, get);
  }
}

function isContiguous(t: TorchTensor): boolean {
  let expected = 1;
  for (let d = t.sizes.length - 1; d >= 0; d--) {
    if (t.sizes[d] !== 1 && t.strides[d] !== expected) return false;
    expected *= t.sizes[d];
  }
  return true;
}

/**
 * A binary .t7 of a model starts with type 4 (torch object) or 3 (table), memo index 1, then for an object the
 * length-prefixed `V 1` header (or, in files older than class versions, the class name). The ASCII
 * serialization starts with the same numbers as text; it is recognised here and refused by the reader.
 */
export function sniffTorch7(head: Uint8Array): boolean {
  if (sniffTorch7Ascii(head)) return true;
  if (head.length < 12) return false;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const type = dv.getInt32(0, true);
  if (dv.getInt32(4, true) !== 1) return false;
  if (type === TYPE.table) {
    const n = dv.getInt32(8, true);
    return n >= 0 && n < 1 << 24 && (n === 0 || (head.length >= 16 && [1, 2, 3, 4, 5].includes(dv.getInt32(12, true))));
  }
  if (type !== TYPE.torch) return false;
  const n = dv.getInt32(8, true);
  if (n < 3 || n > 256 || head.length < 12 + n) return false;
  const text = Buffer.from(head.subarray(12, 12 + n)).toString('latin1');
  return /^V \d+$/.test(text) || /^[A-Za-z_][\w.]*$/.test(text);
}

export function sniffTorch7Ascii(head: Uint8Array): boolean {
  const text = Buffer.from(head.subarray(0, 32)).toString('latin1');
  return /^[34]\n1\n\d+\n(V \d+\n)?[A-Za-z_]/.test(text);
}

/**
 * Deserializes a whole binary .t7 file into its root value. `longSize` is the width of a long (4 or 8); without it,
 * 8 is tried, then 4. The ASCII serialization is recognised and refused.
 */
export function readTorch7(
  bytes: Uint8Array,
  path: string,
  longSizeOption?: ReadOptions['longSize'],
): { root: LuaValue; longSize: 4 | 8 } {
  if (bytes.byteLength === 0) throw formatError(path, 'empty file (0 bytes), expected a Torch7 .t7 file');
  if (sniffTorch7Ascii(bytes)) {
    throw formatError(
      path,
      'Torch7 ASCII serialization is not supported; save the model in ' +
        'binary form (torch.save(file, model), the default)',
    );
  }
  if (longSizeOption !== undefined && longSizeOption !== 4 && longSizeOption !== 8) {
    throw new VggFaceError('E_USAGE', `Expected 4 or 8 for longSize but received ${String(longSizeOption)}`, {
      input: 'longSize',
    });
  }
  let root: LuaValue;
  let longSize: 4 | 8 = longSizeOption ?? 8;
  try {
    root = new Torch7Parser(bytes, path, longSize).readRoot();
  } catch (err) {
    if (longSizeOption !== undefined || !(err instanceof VggFaceError) || err.code !== 'E_FORMAT') throw err;
    // Written by a Windows build? Its longs are 4 bytes. If that fails too, the first error is the one to report.
    try {
      root = new Torch7Parser(bytes, path, 4).readRoot();
      longSize = 4;
    } catch {
      throw err;
    }
  }
  return { root, longSize };
}
