/**
 * The aligned crop: the transform of align-transform.ts (pure geometry, shared with the browser build) applied to
 * the original pixels in one resampling step by sharp/libvips `affine` (bilinear), laid out by warp-geometry.ts.
 */
import sharp from 'sharp';
import type { RawImage } from '../image/types.js';
import { alignmentTransform, type ResolvedAlignOptions } from './align-transform.js';
import type { Similarity } from './similarity.js';
import type { DetectedFace } from './types.js';
import { warpLayout } from './warp-geometry.js';

export * from './align-transform.js';

/**
 * Resamples `image` through `transform` into a size x size RGB crop (black outside the photo), in one bilinear
 * interpolation by libvips. Only the part of the photo the crop sees is handed to libvips, so a small face in a
 * large photo costs no more than a large one.
 */
export async function warpToCrop(image: RawImage, transform: Similarity, size: number): Promise<RawImage> {
  const out = new Uint8Array(size * size * 3);
  const layout = warpLayout(image, transform, size);
  if (!layout) return { data: out, width: size, height: size, channels: 3 };
  const { a, b } = transform;
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extract(layout.region)
    .affine(
      [
        [a, -b],
        [b, a],
      ],
      {
        odx: layout.odx,
        ody: layout.ody,
        interpolator: sharp.interpolators.bilinear,
        background: { r: 0, g: 0, b: 0 },
      },
    )
    .raw()
    .toBuffer({ resolveWithObject: true });
  // libvips's own output size, not the layout's: what it wrote is what is there to copy.
  const { shiftX, shiftY } = layout;
  const u0 = Math.max(0, shiftX);
  const u1 = Math.min(size, info.width + shiftX);
  if (u1 > u0) {
    for (let v = 0; v < size; v++) {
      const row = v - shiftY;
      if (row < 0 || row >= info.height) continue;
      const src = (row * info.width + u0 - shiftX) * 3;
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
