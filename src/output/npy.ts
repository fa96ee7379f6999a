/**
 * The .npy header (NumPy format 1.0) for a float32 matrix whose row count grows while it is written:
 * the header has a fixed size (128 bytes) so it can be rewritten in place with the final count.
 */
export const NPY_HEADER_BYTES = 128;

export function npyHeader(rows: number, columns: number): Buffer {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${columns}), }`;
  const header = Buffer.alloc(NPY_HEADER_BYTES, 0x20);
  header.write('\x93NUMPY', 0, 'latin1');
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(NPY_HEADER_BYTES - 10, 8);
  header.write(dict, 10, 'latin1');
  header[NPY_HEADER_BYTES - 1] = 0x0a;
  return header;
}

/** Reads the shape of a float32 C-order .npy header; undefined when the bytes are not one. */
export function parseNpyHeader(bytes: Uint8Array): { rows: number; columns: number; headerBytes: number } | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') return undefined;
  const len = b[6] === 1 ? b.readUInt16LE(8) : b.length >= 12 ? b.readUInt32LE(8) : -1;
  const start = b[6] === 1 ? 10 : 12;
  if (len < 0 || start + len > b.length) return undefined;
  const dict = b.toString('latin1', start, start + len);
  const m = /'descr':\s*'<f4'.*'fortran_order':\s*False.*'shape':\s*\((\d+),\s*(\d+)\)/.exec(dict);
  if (!m) return undefined;
  return { rows: Number(m[1]), columns: Number(m[2]), headerBytes: start + len };
}
