/**
 * MAT-file level 5 container (MATLAB v5/v6/v7 `save` format; MathWorks "MAT-File Format", chapter 1):
 * a 128-byte header (text, version 0x0100, endian indicator "IM" or "MI"), then one data element per variable.
 * An element is a tag (type, byte count) and data padded to 8 bytes, or a "small" element whose tag packs
 * count and type in 4 bytes with up to 4 data bytes. Variables are miMATRIX elements (array flags, dimensions,
 * name, then class-specific data: cells hold miMATRIX elements, structs field names then one miMATRIX per
 * field per element, numeric arrays their real (and imaginary) data, column-major, in any element type),
 * usually wrapped in miCOMPRESSED elements (zlib).
 *
 * Each variable is read on its own (streamed through zlib when compressed) into one buffer of its declared size,
 * and numeric data stays in that buffer until asked for: a 580 MB variable costs 580 MB.
 */
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createInflate } from 'node:zlib';
import { fileError, formatError, VggFaceError } from '../errors.js';
import { float32View } from './layout.js';

/** Data element types. */
export const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
  UTF8: 16,
  UTF16: 17,
  UTF32: 18,
} as const;

/** Array classes (the low byte of the array flags). */
export const MX = {
  CELL: 1,
  STRUCT: 2,
  OBJECT: 3,
  CHAR: 4,
  SPARSE: 5,
  DOUBLE: 6,
  SINGLE: 7,
  INT8: 8,
  UINT8: 9,
  INT16: 10,
  UINT16: 11,
  INT32: 12,
  UINT32: 13,
  INT64: 14,
  UINT64: 15,
  FUNCTION: 16,
  OPAQUE: 17,
} as const;

const CLASS_NAMES: Record<number, string> = {
  1: 'cell',
  2: 'struct',
  3: 'object',
  4: 'char',
  5: 'sparse',
  6: 'double',
  7: 'single',
  8: 'int8',
  9: 'uint8',
  10: 'int16',
  11: 'uint16',
  12: 'int32',
  13: 'uint32',
  14: 'int64',
  15: 'uint64',
  16: 'function_handle',
  17: 'opaque',
};

const TYPE_BYTES: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 2,
  5: 4,
  6: 4,
  7: 4,
  9: 8,
  12: 8,
  13: 8,
  16: 1,
  17: 2,
  18: 4,
};
const TYPE_NAMES: Record<number, string> = {
  1: 'miINT8',
  2: 'miUINT8',
  3: 'miINT16',
  4: 'miUINT16',
  5: 'miINT32',
  6: 'miUINT32',
  7: 'miSINGLE',
  9: 'miDOUBLE',
  12: 'miINT64',
  13: 'miUINT64',
  14: 'miMATRIX',
  15: 'miCOMPRESSED',
  16: 'miUTF8',
  17: 'miUTF16',
  18: 'miUTF32',
};

/** zlib cannot expand data by more than about 1032:1; a declared size beyond that is a bomb or corruption. */
export const MAX_INFLATE_RATIO = 1032;
const MAX_DEPTH = 64;
export const HEADER_BYTES = 128;

/** Raw data of a numeric array, still in the variable's buffer. */
export interface MatData {
  readonly bytes: Uint8Array;
  readonly type: number;
  readonly offset: number;
  readonly byteLength: number;
  readonly littleEndian: boolean;
}

export interface MatNumeric {
  readonly kind: 'numeric';
  readonly className: string;
  readonly dims: readonly number[];
  readonly real: MatData;
  readonly imag?: MatData;
  readonly logical: boolean;
}
export interface MatChar {
  readonly kind: 'char';
  readonly dims: readonly number[];
  /** Rows joined by newlines (almost always a single row). */
  readonly text: string;
}
export interface MatCell {
  readonly kind: 'cell';
  readonly dims: readonly number[];
  /** Column-major. */
  readonly items: readonly MatValue[];
}
export interface MatStruct {
  readonly kind: 'struct';
  readonly dims: readonly number[];
  readonly fieldNames: readonly string[];
  /** One map per element, column-major. */
  readonly items: readonly ReadonlyMap<string, MatValue>[];
  /** For objects (class instances stored like structs). */
  readonly className?: string;
}
/** Sparse matrices, function handles and opaque objects: kept as a placeholder, an error only when used. */
export interface MatUnsupported {
  readonly kind: 'unsupported';
  readonly className: string;
  readonly dims: readonly number[];
}
export type MatValue = MatNumeric | MatChar | MatCell | MatStruct | MatUnsupported;

export interface MatFile {
  readonly headerText: string;
  readonly littleEndian: boolean;
  /** Top-level variables in file order. */
  readonly variables: ReadonlyMap<string, MatValue>;
  /** Whether any variable was stored zlib-compressed. */
  readonly compressed: boolean;
}

/** Header checks shared by the reader and detection. */
export function matHeaderText(head: Uint8Array): string {
  return Buffer.from(head.subarray(0, Math.min(116, head.length)))
    .toString('latin1')
    .replace(/[\0\s]+$/, '');
}

export function isMat73(head: Uint8Array): boolean {
  return matHeaderText(head).startsWith('MATLAB 7.3 MAT-file');
}

export function isMat5(head: Uint8Array): boolean {
  if (head.length < HEADER_BYTES || !matHeaderText(head).startsWith('MATLAB 5.0 MAT-file')) return false;
  const endian = Buffer.from(head.subarray(126, 128)).toString('latin1');
  return endian === 'IM' || endian === 'MI';
}

/**
 * What is wrong with a v7.3 file (HDF5 underneath: cells become object references) and the command that converts it.
 */
export function mat73Problem(path: string): string {
  return (
    'MATLAB v7.3 MAT-file (HDF5 inside) is not supported; save it again as a v7 MAT-file, e.g. in MATLAB or Octave: ' +
    `s = load('${path.replace(/'/g, "''")}'); save('converted.mat', '-struct', 's', '-v7')`
  );
}

/** Reads every variable of a MAT-file v5. */
export async function readMatFile(path: string): Promise<MatFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw fileError(path, err);
  }
  try {
    const size = (await fh.stat()).size;
    const header = Buffer.alloc(Math.min(HEADER_BYTES, size));
    await readExactly(fh, header, 0, path);
    if (isMat73(header)) throw formatError(path, mat73Problem(path));
    if (size < HEADER_BYTES)
      throw formatError(path, `truncated: ${size} bytes, a MAT-file starts with a ${HEADER_BYTES}-byte header`);
    const headerText = matHeaderText(header);
    if (!headerText.startsWith('MATLAB 5.0 MAT-file')) {
      throw formatError(
        path,
        'not a MAT-file v5: the header text ' +
          `starts ${JSON.stringify(headerText.slice(0, 24))}, expected "MATLAB 5.0 MAT-file"`,
      );
    }
    const endian = header.toString('latin1', 126, 128);
    if (endian !== 'IM' && endian !== 'MI')
      throw formatError(path, `bad MAT-file endian indicator ${JSON.stringify(endian)} (expected "IM" or "MI")`);
    const littleEndian = endian === 'IM';
    const version = littleEndian ? header.readUInt16LE(124) : header.readUInt16BE(124);
    if (version !== 0x0100)
      throw formatError(path, `unsupported MAT-file version 0x${version.toString(16)} (expected 0x0100)`);

    const variables = new Map<string, MatValue>();
    let compressed = false;
    let pos = HEADER_BYTES;
    const tag = Buffer.alloc(8);
    while (pos < size) {
      if (size - pos < 8)
        throw formatError(path, `truncated: ${size - pos} stray bytes at byte ${pos}, an element tag needs 8`);
      const at = pos;
      await readExactly(fh, tag, pos, path);
      const type = littleEndian ? tag.readUInt32LE(0) : tag.readUInt32BE(0);
      const n = littleEndian ? tag.readUInt32LE(4) : tag.readUInt32BE(4);
      const dataStart = pos + 8;
      if (dataStart + n > size) {
        throw formatError(
          path,
          `truncated: the ${TYPE_NAMES[type] ?? `type ${type}`} element at byte ${pos} ` +
            `declares ${n} bytes, only ${size - dataStart} remain`,
        );
      }
      let element: Buffer;
      if (type === MI.COMPRESSED) {
        compressed = true;
        element = await inflateElement(path, dataStart, n, littleEndian);
        pos = dataStart + n;
      } else if (type === MI.MATRIX) {
        element = Buffer.allocUnsafe(8 + n);
        tag.copy(element, 0);
        await readExactly(fh, element.subarray(8), dataStart, path);
        pos = dataStart + pad8(n);
      } else {
        throw formatError(
          path,
          `unexpected ${TYPE_NAMES[type] ?? `element type ${type}`} at byte ${pos}; ` +
            'a MAT-file holds miMATRIX or miCOMPRESSED variables',
        );
      }
      const parser = new MatParser(element, littleEndian, path, `variable at byte ${at}`);
      const { name, value } = parser.topLevel();
      variables.set(name, value);
    }
    return { headerText, littleEndian, variables, compressed };
  } finally {
    await fh.close();
  }
}

/** Elements are padded to a multiple of 8 bytes. */
function pad8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

async function readExactly(fh: FileHandle, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(into, done, Math.min(into.length - done, 1 << 30), position + done));
    } catch (err) {
      throw fileError(path, err);
    }
    if (n === 0) throw formatError(path, `truncated: expected ${into.length} bytes at byte ${position}`);
    done += n;
  }
}

/**
 * Inflates one miCOMPRESSED element into a buffer of the size its inner tag declares. The declared size is checked
 * against what zlib can possibly produce from the compressed bytes before anything is allocated, and inflating
 * stops the moment the output would exceed it, so a zlib bomb costs at most the size it admits to.
 */
async function inflateElement(path: string, start: number, length: number, littleEndian: boolean): Promise<Buffer> {
  const where = `compressed element at byte ${start - 8}`;
  let out: Buffer | undefined;
  let filled = 0;
  const head = Buffer.alloc(8);
  let headFilled = 0;
  if (length === 0) throw formatError(path, `${where} is empty`);
  let failure: VggFaceError | undefined; // pipeline reports its own abort instead of the error that caused it
  const fail = (err: VggFaceError) => {
    failure = err;
    return err;
  };
  try {
    await pipeline(
      createReadStream(path, { start, end: start + length - 1, highWaterMark: 1 << 20 }),
      createInflate({ chunkSize: 1 << 20 }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          let c = chunk;
          if (!out) {
            const take = Math.min(8 - headFilled, c.length);
            c.copy(head, headFilled, 0, take);
            headFilled += take;
            c = c.subarray(take);
            if (headFilled < 8) continue;
            const type = littleEndian ? head.readUInt32LE(0) : head.readUInt32BE(0);
            const n = littleEndian ? head.readUInt32LE(4) : head.readUInt32BE(4);
            if (type !== MI.MATRIX)
              throw fail(
                formatError(path, `${where} holds ${TYPE_NAMES[type] ?? `element type ${type}`}, expected miMATRIX`),
              );
            const total = 8 + n;
            if (total > MAX_INFLATE_RATIO * length + 1024) {
              throw fail(
                new VggFaceError(
                  'E_UNSAFE',
                  `${path}: ${where} declares ${total} bytes from ${length} compressed bytes, ` +
                    'more than zlib can produce (zlib bomb or corrupt file)',
                  { input: path },
                ),
              );
            }
            out = Buffer.allocUnsafe(total); // pages are only touched as data arrives
            head.copy(out, 0);
            filled = 8;
          }
          if (filled + c.length > out.length) {
            throw fail(
              new VggFaceError(
                'E_UNSAFE',
                `${path}: ${where} inflates past its declared ${out.length} bytes (zlib bomb or corrupt file)`,
                { input: path },
              ),
            );
          }
          c.copy(out, filled);
          filled += c.length;
        }
      },
    );
  } catch (err) {
    if (failure) throw failure;
    if (err instanceof VggFaceError) throw err;
    throw formatError(path, `${where}: zlib: ${(err as Error).message} (truncated or corrupt file)`, err);
  }
  if (!out) throw formatError(path, `truncated: ${where} inflates to only ${headFilled} bytes`);
  if (filled < out.length)
    throw formatError(path, `truncated: ${where} inflates to ${filled} bytes, its miMATRIX declares ${out.length}`);
  return out;
}

interface Tag {
  type: number;
  /** Data bytes. */
  n: number;
  dataStart: number;
  /** Where the next element starts. */
  next: number;
  at: number;
}

/** Parses one variable's bytes (an miMATRIX element, tag included). */
export class MatParser {
  private readonly dv: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly le: boolean,
    private readonly path: string,
    private readonly where: string,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  topLevel(): { name: string; value: MatValue } {
    const tag = this.tag(0, this.bytes.byteLength, 'variable');
    if (tag.type !== MI.MATRIX)
      throw this.fail(`expected miMATRIX, found ${TYPE_NAMES[tag.type] ?? `type ${tag.type}`}`, 0);
    return this.matrix(tag, 0, 'variable');
  }

  private fail(problem: string, at: number): VggFaceError {
    return formatError(this.path, `${this.where}: ${problem} (byte ${at} of the variable)`);
  }

  private u32(at: number): number {
    return this.dv.getUint32(at, this.le);
  }

  /** Reads the tag at `at`; the element must end by `end`. */
  private tag(at: number, end: number, what: string): Tag {
    if (at + 8 > end) throw this.fail(`truncated: ${what} tag runs past the end of its parent`, at);
    const first = this.u32(at);
    if (first >>> 16 !== 0) {
      // Small data element: byte count in the upper 16 bits, type in the lower; data in the next 4 bytes.
      const n = first >>> 16;
      const type = first & 0xffff;
      if (n > 4) throw this.fail(`small ${what} element declares ${n} bytes (at most 4)`, at);
      return { type, n, dataStart: at + 4, next: at + 8, at };
    }
    const n = this.u32(at + 4);
    const dataStart = at + 8;
    if (dataStart + n > end)
      throw this.fail(
        `truncated: ${what} element declares ${n} bytes, only ${end - dataStart} remain in its parent`,
        at,
      );
    // Padding to 8 bytes may be missing after the last element of a compressed variable.
    return { type: first, n, dataStart, next: Math.min(dataStart + pad8(n), end), at };
  }

  private matrix(tag: Tag, depth: number, what: string): { name: string; value: MatValue } {
    if (depth > MAX_DEPTH) throw this.fail(`arrays nested deeper than ${MAX_DEPTH} levels`, tag.at);
    const end = tag.dataStart + tag.n;
    if (tag.n === 0)
      return {
        name: '',
        value: {
          kind: 'numeric',
          className: 'double',
          dims: [0, 0],
          real: this.data(MI.DOUBLE, end, 0),
          logical: false,
        },
      };
    const flagsTag = this.tag(tag.dataStart, end, `${what} array flags`);
    if (flagsTag.type !== MI.UINT32 || flagsTag.n !== 8)
      throw this.fail(`${what}: array flags must be 8 bytes of miUINT32`, flagsTag.at);
    const flags = this.u32(flagsTag.dataStart);
    const classId = flags & 0xff;
    const complex = (flags & 0x800) !== 0;
    const logical = (flags & 0x200) !== 0;
    const className = CLASS_NAMES[classId];
    if (!className) throw this.fail(`${what}: unknown array class ${classId}`, flagsTag.at);

    const dimsTag = this.tag(flagsTag.next, end, `${what} dimensions`);
    if (dimsTag.type !== MI.INT32 || dimsTag.n % 4 !== 0 || dimsTag.n < 8)
      throw this.fail(`${what}: dimensions must be two or more miINT32 values`, dimsTag.at);
    const dims: number[] = [];
    for (let p = dimsTag.dataStart; p < dimsTag.dataStart + dimsTag.n; p += 4) {
      const d = this.dv.getInt32(p, this.le);
      if (d < 0) throw this.fail(`${what}: negative dimension ${d}`, dimsTag.at);
      dims.push(d);
    }
    const count = dims.reduce((a, b) => a * b, 1);

    const nameTag = this.tag(dimsTag.next, end, `${what} name`);
    if (nameTag.type !== MI.INT8 && nameTag.type !== MI.UINT8 && nameTag.type !== MI.UTF8)
      throw this.fail(`${what}: array name must be miINT8`, nameTag.at);
    const name = Buffer.from(this.bytes.subarray(nameTag.dataStart, nameTag.dataStart + nameTag.n)).toString('latin1');
    const label = name || what;
    let pos = nameTag.next;

    switch (classId) {
      case MX.CELL: {
        // Every cell takes at least an 8-byte tag: a larger count is corrupt, and refusing it avoids a huge loop.
        if (count * 8 > end - pos)
          throw this.fail(`${label}: cell array of ${dims.join('x')} cannot fit in ${end - pos} bytes`, tag.at);
        const items: MatValue[] = [];
        for (let i = 0; i < count; i++) {
          const t = this.tag(pos, end, `${label}{${i + 1}}`);
          if (t.type !== MI.MATRIX)
            throw this.fail(`${label}{${i + 1}} is ${TYPE_NAMES[t.type] ?? `type ${t.type}`}, expected miMATRIX`, t.at);
          items.push(this.matrix(t, depth + 1, `${label}{${i + 1}}`).value);
          pos = t.next;
        }
        return { name, value: { kind: 'cell', dims, items } };
      }
      case MX.STRUCT:
      case MX.OBJECT: {
        let objectClass: string | undefined;
        if (classId === MX.OBJECT) {
          const classTag = this.tag(pos, end, `${label} class name`);
          objectClass = Buffer.from(this.bytes.subarray(classTag.dataStart, classTag.dataStart + classTag.n)).toString(
            'latin1',
          );
          pos = classTag.next;
        }
        const lenTag = this.tag(pos, end, `${label} field name length`);
        if (lenTag.type !== MI.INT32 || lenTag.n !== 4)
          throw this.fail(`${label}: field name length must be one miINT32`, lenTag.at);
        const fieldLength = this.dv.getInt32(lenTag.dataStart, this.le);
        const namesTag = this.tag(lenTag.next, end, `${label} field names`);
        if (fieldLength <= 0 || namesTag.n % fieldLength !== 0)
          throw this.fail(
            `${label}: ${namesTag.n} bytes of field names are not a multiple of ${fieldLength}`,
            namesTag.at,
          );
        const fieldNames: string[] = [];
        for (let p = namesTag.dataStart; p < namesTag.dataStart + namesTag.n; p += fieldLength) {
          fieldNames.push(
            Buffer.from(this.bytes.subarray(p, p + fieldLength))
              .toString('latin1')
              .replace(/\0.*$/s, ''),
          );
        }
        pos = namesTag.next;
        if (count * fieldNames.length * 8 > end - pos)
          throw this.fail(
            `${label}: struct array of ${dims.join('x')} ` +
              `with ${fieldNames.length} fields cannot fit in ${end - pos} bytes`,
            tag.at,
          );
        const items: Map<string, MatValue>[] = [];
        for (let i = 0; i < count; i++) {
          const item = new Map<string, MatValue>();
          for (const field of fieldNames) {
            const where = `${label}${count > 1 ? `(${i + 1})` : ''}.${field}`;
            const t = this.tag(pos, end, where);
            if (t.type !== MI.MATRIX)
              throw this.fail(`${where} is ${TYPE_NAMES[t.type] ?? `type ${t.type}`}, expected miMATRIX`, t.at);
            item.set(field, this.matrix(t, depth + 1, where).value);
            pos = t.next;
          }
          items.push(item);
        }
        return { name, value: { kind: 'struct', dims, fieldNames, items, className: objectClass } };
      }
      case MX.CHAR: {
        const t = this.tag(pos, end, `${label} characters`);
        return { name, value: { kind: 'char', dims, text: this.chars(t, dims, label) } };
      }
      case MX.SPARSE:
      case MX.FUNCTION:
      case MX.OPAQUE:
        return { name, value: { kind: 'unsupported', className, dims } };
      default: {
        const realTag = this.tag(pos, end, `${label} data`);
        const real = this.numericData(realTag, count, label);
        const imag = complex
          ? this.numericData(this.tag(realTag.next, end, `${label} imaginary data`), count, `${label} (imaginary part)`)
          : undefined;
        return { name, value: { kind: 'numeric', className, dims, real, imag, logical } };
      }
    }
  }

  private data(type: number, offset: number, byteLength: number): MatData {
    return { bytes: this.bytes, type, offset, byteLength, littleEndian: this.le };
  }

  private numericData(t: Tag, count: number, label: string): MatData {
    const width = TYPE_BYTES[t.type];
    if (!width || t.type === MI.UTF8 || t.type === MI.UTF16 || t.type === MI.UTF32) {
      throw this.fail(`${label}: numeric data of ${TYPE_NAMES[t.type] ?? `type ${t.type}`}`, t.at);
    }
    if (t.n !== count * width)
      throw this.fail(
        `${label}: ${count} values need ${count * width} bytes of ${TYPE_NAMES[t.type]}, the element has ${t.n}`,
        t.at,
      );
    return this.data(t.type, t.dataStart, t.n);
  }

  private chars(t: Tag, dims: readonly number[], label: string): string {
    const raw = this.bytes.subarray(t.dataStart, t.dataStart + t.n);
    let codes: number[];
    switch (t.type) {
      case MI.UTF8:
        codes = [...Buffer.from(raw).toString('utf8')].map((c) => c.codePointAt(0)!);
        break;
      case MI.INT8:
      case MI.UINT8:
        codes = [...raw];
        break;
      case MI.UINT16:
      case MI.UTF16:
      case MI.INT16:
        codes = codeUnits(raw, MI.UINT16, this.le);
        break;
      case MI.UTF32:
      case MI.UINT32:
      case MI.INT32:
        codes = codeUnits(raw, MI.UINT32, this.le);
        break;
      default:
        throw this.fail(`${label}: character data of ${TYPE_NAMES[t.type] ?? `type ${t.type}`}`, t.at);
    }
    const rows = dims[0] ?? 0;
    if (rows <= 1) return text(codes);
    if (codes.length % rows !== 0)
      throw this.fail(`${label}: ${codes.length} characters do not fill ${rows} rows`, t.at);
    const cols = codes.length / rows;
    const lines: string[] = [];
    // column-major
    for (let r = 0; r < rows; r++) lines.push(text(Array.from({ length: cols }, (_, c) => codes[r + c * rows])));
    return lines.join('\n');
  }
}

/** Character data of 16- or 32-bit units (`type` UINT16 or UINT32), read unsigned; a partial last unit is dropped. */
function codeUnits(raw: Uint8Array, type: number, le: boolean): number[] {
  const get = getter(new DataView(raw.buffer, raw.byteOffset, raw.byteLength), type, le);
  return Array.from({ length: Math.floor(raw.length / TYPE_BYTES[type]) }, (_, i) => get(i));
}

/** Code points -> string, in slices (spreading a long array overflows the stack); invalid ones become U+FFFD. */
function text(codes: readonly number[]): string {
  let s = '';
  for (let i = 0; i < codes.length; i += 4096)
    s += String.fromCodePoint(...codes.slice(i, i + 4096).map((c) => (c <= 0x10ffff ? c : 0xfffd)));
  return s;
}

/** Numeric data as float32 (column-major, as stored): a view when it is little-endian single and aligned. */
export function matToFloat32(d: MatData, path: string): Float32Array {
  const width = TYPE_BYTES[d.type];
  const count = d.byteLength / width;
  if (d.type === MI.SINGLE && d.littleEndian) return float32View(d.bytes, d.offset, count, path);
  const out = new Float32Array(count);
  const get = dataGetter(d);
  for (let i = 0; i < count; i++) out[i] = get(i);
  return out;
}

/** Numeric data as plain numbers (for small arrays: sizes, pads, means). */
export function matToNumbers(d: MatData): number[] {
  const count = d.byteLength / TYPE_BYTES[d.type];
  const get = dataGetter(d);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(get(i));
  return out;
}

/** The i-th value of numeric data. */
function dataGetter(d: MatData): (i: number) => number {
  return getter(new DataView(d.bytes.buffer, d.bytes.byteOffset + d.offset, d.byteLength), d.type, d.littleEndian);
}

function getter(dv: DataView, type: number, le: boolean): (i: number) => number {
  switch (type) {
    case MI.INT8:
      return (i) => dv.getInt8(i);
    case MI.UINT8:
      return (i) => dv.getUint8(i);
    case MI.INT16:
      return (i) => dv.getInt16(i * 2, le);
    case MI.UINT16:
      return (i) => dv.getUint16(i * 2, le);
    case MI.INT32:
      return (i) => dv.getInt32(i * 4, le);
    case MI.UINT32:
      return (i) => dv.getUint32(i * 4, le);
    case MI.SINGLE:
      return (i) => dv.getFloat32(i * 4, le);
    case MI.DOUBLE:
      return (i) => dv.getFloat64(i * 8, le);
    case MI.INT64:
      return (i) => Number(dv.getBigInt64(i * 8, le));
    case MI.UINT64:
      return (i) => Number(dv.getBigUint64(i * 8, le));
    default:
      throw new Error(`internal: numeric type ${type}`);
  }
}

/** The MATLAB type name of a value, for messages. */
export function matTypeName(v: MatValue | undefined): string {
  if (!v) return 'missing';
  const dims = v.dims.join('x');
  switch (v.kind) {
    case 'numeric':
      return `${dims} ${v.className}`;
    case 'char':
      return `${dims} char`;
    case 'cell':
      return `${dims} cell`;
    case 'struct':
      return `${dims} ${v.className ? `${v.className} object` : 'struct'}`;
    case 'unsupported':
      return `${dims} ${v.className}`;
  }
}
