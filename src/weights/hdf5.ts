/**
 * HDF5 access for the weight readers, through h5wasm (the HDF5 C library compiled to WebAssembly).
 *
 * Memory: h5wasm's Node build reads files from disk through Emscripten's NODERAWFS, so the file is never copied
 * into wasm memory. Datasets are read in row blocks (hyperslabs) into one small wasm buffer and handed to the
 * caller, which writes them straight into their final layout: a 400 MB fc6 never exists twice, and the wasm heap
 * (which cannot shrink) stays a few MB above its initial size.
 */
import type { File as H5File } from 'h5wasm/node';
import { formatError, VggFaceError } from '../errors.js';

type H5Lib = typeof import('h5wasm/node');
type H5Module = Awaited<H5Lib['ready']>;

export type Hdf5Dtype = 'float32' | 'float64';

/** A float dataset: where it is, its shape and stored element type. */
export interface Hdf5Dataset {
  readonly path: string;
  readonly shape: readonly number[];
  readonly dtype: Hdf5Dtype;
}

/** A block of consecutive rows: a view over wasm memory, valid only during the callback. */
export type RowVisitor = (rows: Float32Array | Float64Array, firstRow: number, rowCount: number) => void;

/** `\x89HDF\r\n\x1a\n`. */
const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];
/** Largest block read at once (16 MiB): big enough for efficient reads, small enough to keep the wasm heap small. */
const BLOCK_BYTES = 16 * 1024 * 1024;

/**
 * True when `head` holds the HDF5 signature where the format allows it: at offset 0, or after a user block at
 * 512, 1024, 2048, ... bytes (MATLAB v7.3 files use a 512-byte one).
 */
export function sniffHdf5(head: Uint8Array): boolean {
  for (let at = 0; at + SIGNATURE.length <= head.length; at = at === 0 ? 512 : at * 2) {
    if (SIGNATURE.every((b, i) => head[at + i] === b)) return true;
  }
  return false;
}

/**
 * Loads h5wasm; Node caches the module, so this runs once per process. HDF5 errors become exceptions, not stderr
 * output.
 */
async function loadH5wasm(): Promise<{ lib: H5Lib; module: H5Module }> {
  const lib = await import('h5wasm/node');
  const module = await lib.ready;
  module.activate_throwing_error_handler();
  return { lib, module };
}

/** The innermost HDF5 error message from h5wasm's error-stack text, e.g. "truncated file: eof = 120000, ...". */
export function hdf5Message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const m = /#\d+: .* in [\w.]+\(\): (.*)$/.exec(line);
    if (m) last = m[1].trim();
  }
  return last ?? (text.split('\n')[0].trim() || 'unknown HDF5 error');
}

/** An open HDF5 file, read-only. Close it when done. */
export class Hdf5File {
  private constructor(
    readonly path: string,
    private readonly lib: H5Lib,
    private readonly module: H5Module,
    private readonly file: H5File,
  ) {}

  static async open(path: string): Promise<Hdf5File> {
    const { lib, module } = await loadH5wasm();
    let file: H5File;
    try {
      file = new lib.File(path, 'r');
    } catch (err) {
      throw formatError(path, `not a readable HDF5 file: ${hdf5Message(err)}`, err);
    }
    if (file.file_id < 0n) throw formatError(path, 'not a readable HDF5 file');
    return new Hdf5File(path, lib, module, file);
  }

  close(): void {
    this.file.close();
  }

  /** What `objectPath` names: a group, a dataset, something else, or nothing. */
  kind(objectPath: string): 'group' | 'dataset' | 'other' | 'missing' {
    const entity = this.guard(objectPath, () => this.file.get(objectPath));
    if (entity === null) return 'missing';
    if (entity instanceof this.lib.Group) return 'group';
    if (entity instanceof this.lib.Dataset) return 'dataset';
    return 'other';
  }

  /** Member names of a group, in the file's order. */
  keys(groupPath: string): string[] {
    return this.guard(groupPath, () => {
      const g = groupPath === '/' ? this.file : this.file.get(groupPath);
      return g instanceof this.lib.Group ? g.keys() : [];
    });
  }

  /** Names of the attributes of an object. */
  attributeNames(objectPath: string): string[] {
    return this.guard(objectPath, () => {
      const o = objectPath === '/' ? this.file : this.file.get(objectPath);
      return o instanceof this.lib.Group || o instanceof this.lib.Dataset ? Object.keys(o.attrs) : [];
    });
  }

  /**
   * A string-array attribute (fixed-length or variable-length strings, as h5py and Keras write them), or
   * undefined when the object has no such attribute. An attribute of another type is a format error.
   */
  stringsAttribute(objectPath: string, name: string): string[] | undefined {
    const value = this.guard(`${objectPath} attribute ${name}`, () => {
      const o = objectPath === '/' ? this.file : this.file.get(objectPath);
      if (!(o instanceof this.lib.Group || o instanceof this.lib.Dataset)) return undefined;
      if (!Object.keys(o.attrs).includes(name)) return undefined;
      return o.get_attribute(name, false);
    });
    if (value === undefined || value === null) return value === null ? [] : undefined;
    const list = Array.isArray(value) ? value : [value];
    const decoder = new TextDecoder();
    return list.map((v) => {
      if (typeof v === 'string') return v;
      if (v instanceof Uint8Array) return decoder.decode(v).replace(/\0+$/, '');
      throw formatError(this.path, `attribute ${name} of ${objectPath} is not a list of strings`);
    });
  }

  /** The dataset at `datasetPath`; a format error unless it holds float32 or float64 values. */
  dataset(datasetPath: string): Hdf5Dataset {
    const meta = this.guard(datasetPath, () => this.module.get_dataset_metadata(this.file.file_id, datasetPath));
    const floatClass = this.module.H5T_class_t.H5T_FLOAT.value;
    if (meta.type !== floatClass || (meta.size !== 4 && meta.size !== 8)) {
      const what =
        meta.type === floatClass
          ? `float${meta.size * 8}`
          : `a non-float type (HDF5 class ${meta.type}, ${meta.size} bytes)`;
      throw formatError(this.path, `dataset ${datasetPath} holds ${what}; expected float32 or float64`);
    }
    if (!meta.shape || meta.shape.length === 0)
      throw formatError(this.path, `dataset ${datasetPath} is a scalar; expected an array`);
    return { path: datasetPath, shape: [...meta.shape], dtype: meta.size === 4 ? 'float32' : 'float64' };
  }

  /** The whole dataset as a new float32 array (for the small ones: biases, conv kernels). */
  readAll(ds: Hdf5Dataset): Float32Array {
    const out = new Float32Array(ds.shape.reduce((a, b) => a * b, 1));
    const rowLength = ds.shape.length === 1 ? ds.shape[0] : ds.shape[ds.shape.length - 1];
    this.readRows(ds, (rows, first) => out.set(rows, first * rowLength));
    return out;
  }

  /**
   * Reads the dataset as rows (the last dimension is the row, every other dimension counts rows: a
   * (kh, kw, in, out) kernel is kh*kw*in rows of `out`), in blocks of consecutive rows through one wasm buffer.
   * A 1-D dataset is one row.
   */
  readRows(ds: Hdf5Dataset, visit: RowVisitor): void {
    const shape = ds.shape.length === 1 ? [1, ds.shape[0]] : ds.shape;
    const rowLength = shape[shape.length - 1];
    const inner = shape[shape.length - 2]; // a hyperslab block stays inside one run of the second-to-last dimension
    const outer = shape.slice(0, -2);
    const planes = outer.reduce((a, b) => a * b, 1);
    const itemBytes = ds.dtype === 'float32' ? 4 : 8;
    if (rowLength === 0 || inner === 0 || planes === 0) return;
    const blockRows = Math.max(1, Math.min(inner, Math.floor(BLOCK_BYTES / (rowLength * itemBytes))));
    const m = this.module;
    const ptr = m._malloc(blockRows * rowLength * itemBytes);
    if (ptr === 0)
      throw new VggFaceError(
        'E_INTERNAL',
        `${this.path}: cannot allocate ${blockRows * rowLength * itemBytes} bytes of HDF5 read buffer`,
      );
    try {
      for (let p = 0; p < planes; p++) {
        const lead: bigint[] = [];
        for (let d = outer.length - 1, rest = p; d >= 0; d--) {
          lead.unshift(BigInt(rest % outer[d]));
          rest = Math.floor(rest / outer[d]);
        }
        for (let r0 = 0; r0 < inner; r0 += blockRows) {
          const n = Math.min(blockRows, inner - r0);
          const count = [...outer.map(() => 1n), BigInt(n), BigInt(rowLength)];
          const offset = [...lead, BigInt(r0), 0n];
          const strides = count.map(() => 1n);
          const status = this.guard(ds.path, () =>
            ds.shape.length === 1
              ? m.get_dataset_data(this.file.file_id, ds.path, null, null, null, BigInt(ptr))
              : m.get_dataset_data(this.file.file_id, ds.path, count, offset, strides, BigInt(ptr)),
          );
          if (status < 0) throw formatError(this.path, `cannot read dataset ${ds.path} (HDF5 status ${status})`);
          // The heap may have grown during the read: take the view afterwards.
          const view =
            ds.dtype === 'float32'
              ? new Float32Array(m.HEAPU8.buffer, ptr, n * rowLength)
              : new Float64Array(m.HEAPU8.buffer, ptr, n * rowLength);
          visit(view, p * inner + r0, n);
        }
      }
    } finally {
      m._free(ptr);
    }
  }

  /** Runs an h5wasm call, turning an HDF5 error into a format error that names the file and the object. */
  private guard<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof VggFaceError) throw err;
      throw formatError(this.path, `HDF5 error at ${what}: ${hdf5Message(err)}`, err);
    }
  }
}

/**
 * Opens `path` and runs a structure check on it (for `matchStructure`): the check's answer, or a description of why
 * the file could not be inspected. Never throws.
 */
export async function probeHdf5(path: string, check: (file: Hdf5File) => true | string): Promise<true | string> {
  let file: Hdf5File;
  try {
    file = await Hdf5File.open(path);
  } catch (err) {
    return err instanceof VggFaceError ? err.message.replace(`${path}: `, '') : String(err);
  }
  try {
    return check(file);
  } catch (err) {
    return err instanceof VggFaceError ? err.message.replace(`${path}: `, '') : String(err);
  } finally {
    file.close();
  }
}

/** Top-level member names, for messages about files of an unexpected structure. */
export function describeTopLevel(file: Hdf5File): string {
  const keys = file.keys('/');
  const shown = keys.slice(0, 8).join(', ') + (keys.length > 8 ? `, ... (${keys.length} in all)` : '');
  return keys.length === 0 ? 'an HDF5 file with an empty root group' : `an HDF5 file whose root holds ${shown}`;
}
