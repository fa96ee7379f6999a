/**
 * IEEE 754 binary16 ("half"), the one implementation: fp16 models, fp16 galleries and fp16 weight files all use it.
 * Node 20 has no Float16Array, so halves are kept as their 16-bit patterns (what ONNX Runtime's float16 tensors take).
 * Encoding rounds to nearest, ties to even (numpy's astype(float16)); decoding is exact.
 */

/** float32 bit pattern -> float16 bits. */
function halfFromFloat32Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0); // Inf, NaN (kept quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    if (e < -10) return sign; // underflows to +-0
    // Subnormal half: shift the mantissa (with its implicit 1) right, rounding to nearest even.
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent: still correct (up to Inf)
  return sign | h;
}

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** One number -> float16 bits. */
export function toHalf(value: number): number {
  scratch[0] = value;
  return halfFromFloat32Bits(scratchBits[0]);
}

/** Every float16 bit pattern's value: decoding is one table look-up (256 kB, built once). */
export const HALF_TO_FLOAT: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] =
      e === 0 ? sign * m * 2 ** -24 : e === 0x1f ? (m ? NaN : sign * Infinity) : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** float16 bits -> number. */
export function halfToNumber(h: number): number {
  return HALF_TO_FLOAT[h & 0xffff];
}

/** float32 values -> float16 bits, into `out` (a new array by default). */
export function encodeHalf(v: ArrayLike<number>, out = new Uint16Array(v.length)): Uint16Array {
  if (v instanceof Float32Array) {
    const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
    for (let i = 0; i < v.length; i++) out[i] = halfFromFloat32Bits(bits[i]);
  } else {
    for (let i = 0; i < v.length; i++) out[i] = toHalf(v[i]);
  }
  return out;
}

/** float16 bits -> float32 values, into `out` (a new array by default). */
export function decodeHalf(h: Uint16Array, out = new Float32Array(h.length)): Float32Array {
  for (let i = 0; i < h.length; i++) out[i] = HALF_TO_FLOAT[h[i]];
  return out;
}
