/**
 * The aligned crop: the transform of align-transform.ts (pure geometry, shared with the browser build) applied to
 * the original pixels in one resampling step by sharp/libvips `affine` (bilinear).
 */
import sharp from 'sharp';
import type { RawImage } from '../image/decode.js';
import { alignmentTransform, type ResolvedAlignOptions } from './align-transform.js';
import { applySimilarity, invertSimilarity, type Similarity } from './similarity.js';
import type { DetectedFace, Point } from './types.js';

export * from './align-transform.js';

/** Rounds half to even, as C's rint() in the default rounding mode (libvips sizes its affine output with it). */
function rint(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Resamples `image` through `transform` into a size x size RGB crop (black outside the photo), in one bilinear
 * interpolation by libvips. Only the part of the photo the crop sees is handed to libvips, so a small face in a
 * large photo costs no more than a large one.
 */
export async function warpToCrop(image: RawImage, transform: Similarity, size: number): Promise<RawImage> {
  const out = new Uint8Array(size * size * 3);
  const inv = invertSimilarity(transform);
  const corners = [
    [-0.5, -0.5],
    [size - 0.5, -0.5],
    [-0.5, size - 0.5],
    [size - 0.5, size - 0.5],
  ].map((c) => applySimilarity(inv, c as unknown as Point));
  // The region of the photo under the crop, with 2 pixels more for the interpolation window.
  const x0 = Math.max(0, Math.floor(Math.min(...corners.map((c) => c[0]))) - 2);
  const y0 = Math.max(0, Math.floor(Math.min(...corners.map((c) => c[1]))) - 2);
  const x1 = Math.min(image.width, Math.ceil(Math.max(...corners.map((c) => c[0]))) + 3);
  const y1 = Math.min(image.height, Math.ceil(Math.max(...corners.map((c) => c[1]))) + 3);
  if (x1 <= x0 || y1 <= y0) return { data: out, width: size, height: size, channels: 3 };
  const w = x1 - x0;
  const h = y1 - y0;
  const { a, b } = transform;
  // Crop coordinates of region pixel j: A j + (A r + t) with r = (x0, y0). libvips places its output at
  // rint(min over the region's transformed corners) and applies only odx/ody of the translation; we give it the
  // fractional part and shift by the whole part when copying.
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
  const lx = rint(Math.min(...regionCorners.map((c) => c[0])));
  const ly = rint(Math.min(...regionCorners.map((c) => c[1])));
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extract({ left: x0, top: y0, width: w, height: h })
    .affine(
      [
        [a, -b],
        [b, a],
      ],
      { odx: offX - kx, ody: offY - ky, interpolator: sharp.interpolators.bilinear, background: { r: 0, g: 0, b: 0 } },
    )
    .raw()
    .toBuffer({ resolveWithObject: true });
  // Crop pixel (u, v) is output pixel (u - lx - kx, v - ly - ky).
  const sx = -lx - kx;
  const sy = -ly - ky;
  const u0 = Math.max(0, -sx);
  const u1 = Math.min(size, info.width - sx);
  if (u1 > u0) {
    for (let v = 0; v < size; v++) {
      const row = v + sy;
      if (row < 0 || row >= info.height) continue;
      const src = (row * info.width + u0 + sx) * 3;
      out.set(data.subarray(src, src + (u1 - u0) * 3), (v * size + u0) * 3);
    }
  }
  return { data: out, width: size, height: size, channels: 3 };
}

/** The aligned crop of one face and the transform that made it. */
export async function alignFace(
  image: RawImage,
  face: DetectedFace,
  options: ResolvedAlignOptions,
): Promise<{ crop: RawImage; transform: Similarity }> {
  const transform = alignmentTransform(face, options);
  return { crop: await warpToCrop(image, transform, options.size), transform };
}
