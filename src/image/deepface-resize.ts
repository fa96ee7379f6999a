/**
 * deepface's resize (deepface/modules/preprocessing.py, resize_image): scale by
 * factor = min(size / height, size / width), to int(width * factor) x int(height * factor) (truncated) with
 * OpenCV's default cv2.resize interpolation (INTER_LINEAR: bilinear, half-pixel centres, edge clamped, no
 * antialiasing), then pad with zeros to size x size: top/left get diff // 2, bottom/right the rest.
 * An image already of the target size is not resampled (cv2.resize copies it).
 *
 * deepface resizes the face as float (0-1) only on its extract_faces route (verify, find, any detector); its
 * represent(..., detector_backend="skip") resizes the 8-bit image with OpenCV's fixed-point bilinear. The model here
 * takes uint8, so each resampled value is rounded to the nearest integer: within half a grey level (0.5/255) of the
 * first route and within one of the second. Channel order does not matter here: every channel is resampled alike.
 */
import type { RawImage } from './types.js';

/** The interpolation table of one axis, as OpenCV's resize computes it for INTER_LINEAR. */
function axisTable(src: number, dst: number): { index: Int32Array; weight: Float32Array } {
  const scale = 1 / (dst / src);
  const index = new Int32Array(dst);
  const weight = new Float32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f = Math.fround(f - s);
    if (s < 0) {
      f = 0;
      s = 0;
    }
    if (s >= src - 1) {
      f = 0;
      s = src - 1;
    }
    index[d] = s;
    weight[d] = f;
  }
  return { index, weight };
}

/**
 * Bilinear resampling of 3-channel HWC pixels to `w` x `h`, as cv2.resize(INTER_LINEAR) on a float image; unrounded.
 */
export function resizeBilinearCv(img: RawImage, w: number, h: number): Float64Array {
  const out = new Float64Array(w * h * 3);
  const xs = axisTable(img.width, w);
  const ys = axisTable(img.height, h);
  const row0 = new Float64Array(w * 3);
  const row1 = new Float64Array(w * 3);
  const hpass = (sy: number, into: Float64Array) => {
    const base = sy * img.width * 3;
    for (let x = 0; x < w; x++) {
      const sx = xs.index[x];
      const a1 = xs.weight[x];
      const a0 = Math.fround(1 - a1);
      const p = base + sx * 3;
      const q = sx + 1 < img.width ? p + 3 : p;
      for (let c = 0; c < 3; c++) into[x * 3 + c] = img.data[p + c] * a0 + img.data[q + c] * a1;
    }
  };
  for (let y = 0; y < h; y++) {
    const sy = ys.index[y];
    const b1 = ys.weight[y];
    const b0 = Math.fround(1 - b1);
    hpass(sy, row0);
    hpass(Math.min(sy + 1, img.height - 1), row1);
    const o = y * w * 3;
    for (let i = 0; i < w * 3; i++) out[o + i] = row0[i] * b0 + row1[i] * b1;
  }
  return out;
}

/** The size deepface resizes to before padding. */
export function deepfaceScaledSize(width: number, height: number, size: number): { width: number; height: number } {
  const factor = Math.min(size / height, size / width);
  return { width: Math.max(1, Math.trunc(width * factor)), height: Math.max(1, Math.trunc(height * factor)) };
}

/** deepface's aspect-preserving resize with zero padding to size x size, rounded to 8 bits. */
export function deepfaceResize(img: RawImage, size: number): RawImage {
  if (img.width === size && img.height === size) return img;
  const scaled = deepfaceScaledSize(img.width, img.height, size);
  const same = scaled.width === img.width && scaled.height === img.height;
  const top = (size - scaled.height) >> 1;
  const left = (size - scaled.width) >> 1;
  const data = new Uint8Array(size * size * 3);
  const values: ArrayLike<number> = same ? img.data : resizeBilinearCv(img, scaled.width, scaled.height);
  for (let y = 0; y < scaled.height; y++) {
    const src = y * scaled.width * 3;
    const dst = ((top + y) * size + left) * 3;
    for (let i = 0; i < scaled.width * 3; i++) data[dst + i] = Math.min(255, Math.max(0, Math.round(values[src + i])));
  }
  return { data, width: size, height: size, channels: 3 };
}
