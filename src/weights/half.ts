/**
 * 16-bit float conversions (IEEE half and bfloat16) to float32. Node 20 has no Float16Array, and both widen
 * exactly, so a file stored in either converts without rounding.
 */
import { formatError } from '../errors.js';
import { HALF_TO_FLOAT } from '../util/float16.js';

function checkRange(bytes: Uint8Array, offset: number, count: number, what: string, path: string): void {
  if (offset < 0 || offset + count * 2 > bytes.byteLength) {
    throw formatError(
      path,
      `truncated: ${count} ${what} values at byte ${offset} run past the end (${bytes.byteLength} bytes)`,
    );
  }
}

/** Little-endian float16 bytes -> float32 (a copy: the dtype changes). */
export function float16ToFloat32(bytes: Uint8Array, offset: number, count: number, path = 'file'): Float32Array {
  checkRange(bytes, offset, count, 'float16', path);
  const table = HALF_TO_FLOAT;
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 2);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = table[dv.getUint16(i * 2, true)];
  return out;
}

/** Little-endian bfloat16 bytes -> float32: bfloat16 is the top half of a float32. */
export function bfloat16ToFloat32(bytes: Uint8Array, offset: number, count: number, path = 'file'): Float32Array {
  checkRange(bytes, offset, count, 'bfloat16', path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 2);
  const out = new Float32Array(count);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
  return out;
}
