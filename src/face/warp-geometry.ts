/**
 * Where the aligned crop's pixels come from, as libvips's `affine` lays them out: Node hands libvips the region of
 * the photo under the crop (face/align.ts, sharp), the browser resamples the same region itself (browser/warp.ts),
 * and both must place the result identically for their crops to agree to the bit. Pure geometry, importing nothing
 * Node-specific. Pixel centres are at integer coordinates.
 */
import { applySimilarity, invertSimilarity, type Similarity } from './similarity.js';

/** C's rint (round half to even in the default rounding mode), which libvips sizes and places its output with. */
export function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface WarpLayout {
  /** The photo region handed to the resampler: under the crop, with 2 pixels more for the interpolation window. */
  readonly region: { readonly left: number; readonly top: number; readonly width: number; readonly height: number };
  /**
   * The fractional part of the region's translation (libvips's odx/ody; libvips applies only these): the whole part
   * is the shift below.
   */
  readonly odx: number;
  readonly ody: number;
  /** Crop pixel (u, v) is resampled pixel (u - shiftX, v - shiftY). */
  readonly shiftX: number;
  readonly shiftY: number;
  /** The size libvips gives its output (Node reads it back from libvips; the browser has only this). */
  readonly outWidth: number;
  readonly outHeight: number;
}

/**
 * The layout of a size x size crop through `transform` (photo pixels to crop pixels) from a width x height photo;
 * undefined when the crop sees none of the photo (it stays black).
 */
export function warpLayout(
  image: { readonly width: number; readonly height: number },
  transform: Similarity,
  size: number,
): WarpLayout | undefined {
  const inv = invertSimilarity(transform);
  const corners = [
    [-0.5, -0.5],
    [size - 0.5, -0.5],
    [-0.5, size - 0.5],
    [size - 0.5, size - 0.5],
  ].map(([x, y]) => applySimilarity(inv, [x, y]));
  const x0 = Math.max(0, Math.floor(Math.min(...corners.map((c) => c[0]))) - 2);
  const y0 = Math.max(0, Math.floor(Math.min(...corners.map((c) => c[1]))) - 2);
  const x1 = Math.min(image.width, Math.ceil(Math.max(...corners.map((c) => c[0]))) + 3);
  const y1 = Math.min(image.height, Math.ceil(Math.max(...corners.map((c) => c[1]))) + 3);
  if (x1 <= x0 || y1 <= y0) return undefined;
  const w = x1 - x0;
  const h = y1 - y0;
  const { a, b } = transform;
  // Crop coordinates of region pixel j: A j + (A r + t) with r = (x0, y0). libvips places its output at
  // rint(min over the region's transformed corners) and applies only odx/ody of the translation: it is given the
  // fractional part, and the whole part becomes the shift.
  const offX = a * x0 - b * y0 + transform.tx;
  const offY = b * x0 + a * y0 + transform.ty;
  const kx = Math.round(offX);
  const ky = Math.round(offY);
  const regionCorners = [
    [0, 0],
    [w, 0],
    [0, h],
    [w, h],
  ].map(([x, y]) => [a * x - b * y, b * x + a * y]);
  const minX = Math.min(...regionCorners.map((c) => c[0]));
  const minY = Math.min(...regionCorners.map((c) => c[1]));
  return {
    region: { left: x0, top: y0, width: w, height: h },
    odx: offX - kx,
    ody: offY - ky,
    shiftX: rint(minX) + kx,
    shiftY: rint(minY) + ky,
    outWidth: Math.floor(Math.max(...regionCorners.map((c) => c[0])) - minX + 0.5),
    outHeight: Math.floor(Math.max(...regionCorners.map((c) => c[1])) - minY + 0.5),
  };
}
