/**
 * Layout conversions every reader shares: each source layout is turned into the canonical one here,
 * so a transpose is written (and tested) once.
 */
import { formatError } from '../errors.js';
import type { Tensor } from './types.js';

export function tensor(shape: readonly number[], data: Float32Array): Tensor {
  return { shape: [...shape], data };
}

/** (kh, kw, in, out) -> (out, in, kh, kw). Keras / HDF5 conv kernels, and MatConvNet after column-major reading. */
export function hwioToOihw(data: Float32Array, kh: number, kw: number, cin: number, cout: number): Tensor {
  const out = new Float32Array(data.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        const src = ((y * kw + x) * cin + i) * cout;
        for (let o = 0; o < cout; o++) {
          out[((o * cin + i) * kh + y) * kw + x] = data[src + o];
        }
      }
    }
  }
  return tensor([cout, cin, kh, kw], out);
}

/**
 * Column-major (h, w, in, out) -> (out, in, h, w), in place. MatConvNet kernels: read row-major, the MATLAB array is
 * (out, in, w, h), so only each h x w plane needs transposing, and the 411 MB fc6 kernel is not copied.
 */
export function colMajorHwioToOihwInPlace(
  data: Float32Array,
  kh: number,
  kw: number,
  cin: number,
  cout: number,
): Tensor {
  const area = kh * kw;
  if (kh > 1 && kw > 1) {
    const plane = new Float32Array(area);
    for (let base = 0; base < cin * cout * area; base += area) {
      plane.set(data.subarray(base, base + area)); // plane[x * kh + y] holds (y, x)
      for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) data[base + y * kw + x] = plane[x * kh + y];
    }
  }
  return tensor([cout, cin, kh, kw], data);
}

/** (in, out) -> (out, in). Dense kernels. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  const block = 64; // tile for cache locality: fc6 is 25088x4096
  for (let r0 = 0; r0 < rows; r0 += block) {
    const r1 = Math.min(rows, r0 + block);
    for (let c0 = 0; c0 < cols; c0 += block) {
      const c1 = Math.min(cols, c0 + block);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[base + c];
      }
    }
  }
  return out;
}

/**
 * Re-orders the inputs of an fc weight (out, in) whose inputs are read H,W,C into C,H,W order (returns a new array).
 * Used for fc6 stored as a 7x7 conv (HWIO) or as a Dense over a channels-last Flatten.
 */
export function fcInputsHwcToChw(weight: Float32Array, out: number, c: number, h: number, w: number): Float32Array {
  const inputs = c * h * w;
  const result = new Float32Array(weight.length);
  for (let o = 0; o < out; o++) {
    const base = o * inputs;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const hwc = (y * w + x) * c;
        for (let ch = 0; ch < c; ch++) result[base + (ch * h + y) * w + x] = weight[base + hwc + ch];
      }
    }
  }
  return result;
}

/** Reverses the input channels of an OIHW conv kernel (RGB <-> BGR). Returns a new tensor. */
export function reverseInputChannels(t: Tensor): Tensor {
  const [o, i, kh, kw] = t.shape;
  const k = kh * kw;
  const out = new Float32Array(t.data.length);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      out.set(t.data.subarray((a * i + b) * k, (a * i + b + 1) * k), (a * i + (i - 1 - b)) * k);
    }
  }
  return tensor(t.shape, out);
}

/**
 * A float32 view of little-endian bytes: no copy when the offset is 4-byte aligned, one copy otherwise.
 * Node Buffers from fs reads are aligned at their start; protobuf fields often are not.
 */
export function float32View(bytes: Uint8Array, offset: number, count: number, path = 'file'): Float32Array {
  const start = bytes.byteOffset + offset;
  if (offset < 0 || offset + count * 4 > bytes.byteLength) {
    throw formatError(
      path,
      `truncated: ${count} float32 values at byte ${offset} run past the end (${bytes.byteLength} bytes)`,
    );
  }
  if (start % 4 === 0) return new Float32Array(bytes.buffer, start, count);
  const copy = new Float32Array(count);
  new Uint8Array(copy.buffer).set(bytes.subarray(offset, offset + count * 4));
  return copy;
}

/** float64 little-endian bytes -> float32 (always a copy: the dtype changes). */
export function float64ToFloat32(bytes: Uint8Array, offset: number, count: number, path = 'file'): Float32Array {
  if (offset < 0 || offset + count * 8 > bytes.byteLength) {
    throw formatError(
      path,
      `truncated: ${count} float64 values at byte ${offset} run past the end (${bytes.byteLength} bytes)`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 8);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
  return out;
}

/**
 * Writes rows [firstRow, firstRow + rows) of an fc kernel stored transposed, (inputs, out) as Keras and the HDF5
 * layouts store it, into the canonical (out, inputs) weight `dst`. With `hwc`, the stored inputs are in H,W,C order
 * (a Dense over a channels-last Flatten, or fc6 stored as a 7x7 conv) and land in C,H,W order. Readers stream a
 * 400 MB fc6 through a small buffer this way instead of holding both layouts whole.
 */
export function transposeRowsInto(
  dst: Float32Array,
  src: ArrayLike<number>,
  firstRow: number,
  rows: number,
  out: number,
  hwc?: { readonly c: number; readonly h: number; readonly w: number },
): void {
  const inputs = dst.length / out;
  const plane = hwc ? hwc.h * hwc.w : 0;
  const block = 64; // tiles keep both the rows read and the columns written in cache
  for (let k0 = 0; k0 < rows; k0 += block) {
    const k1 = Math.min(rows, k0 + block);
    for (let o0 = 0; o0 < out; o0 += block) {
      const o1 = Math.min(out, o0 + block);
      for (let k = k0; k < k1; k++) {
        const r = firstRow + k;
        const col = hwc ? (r % hwc.c) * plane + Math.floor(r / hwc.c) : r;
        const base = k * out;
        for (let o = o0; o < o1; o++) dst[o * inputs + col] = src[base + o];
      }
    }
  }
}

/**
 * A strided tensor's elements in row-major order (PyTorch and Torch7 store transposed or narrowed views this way):
 * `read(i)` gives storage element i; the walk starts at element `offset`.
 */
export function gatherStrided(
  sizes: readonly number[],
  strides: readonly number[],
  offset: number,
  read: (i: number) => number,
): Float32Array {
  const count = sizes.reduce((a, b) => a * b, 1);
  const out = new Float32Array(count);
  const rank = sizes.length;
  const index = new Array<number>(rank).fill(0);
  let src = offset;
  for (let k = 0; k < count; k++) {
    out[k] = read(src);
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      src += strides[d];
      if (index[d] < sizes[d]) break;
      src -= strides[d] * sizes[d];
      index[d] = 0;
    }
  }
  return out;
}
