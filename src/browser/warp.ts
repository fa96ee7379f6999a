/**
 * The aligned crop in the browser: the photo resampled through the alignment transform (face/align-transform.ts,
 * shared with Node) as Node's warpToCrop has libvips do it (face/align.ts, sharp `affine`, bilinear), over the region
 * and at the place face/warp-geometry.ts lays out for both: libvips's 12-bit fixed-point bilinear weights, black
 * outside the photo, and the crop's pixels past the end of libvips's output left black as Node leaves them (a sliver
 * at the photo's right and bottom edges). Pixel centres are at integer coordinates on both sides. Pure, so it is
 * tested against Node's warp in Node (test/browser-shared.test.ts).
 */
import type { RawImage } from '../image/types.js';
import { applySimilarity, invertSimilarity, type Similarity } from '../face/similarity.js';
import { warpLayout } from '../face/warp-geometry.js';

const SHIFT = 12; // libvips VIPS_INTERPOLATE_SHIFT
const ONE = 1 << SHIFT;

export function warpBilinear(image: RawImage, transform: Similarity, size: number): RawImage {
  const out = new Uint8Array(size * size * 3);
  const { width: w, height: h, data } = image;
  // The part of the photo Node hands to libvips, and where libvips's output lands in the crop.
  const layout = warpLayout(image, transform, size);
  if (!layout) return { data: out, width: size, height: size, channels: 3 };
  const inv = invertSimilarity(transform);
  const { shiftX: u0, shiftY: v0, outWidth: outW, outHeight: outH } = layout;
  const px = (x: number, y: number, c: number) => (x < 0 || y < 0 || x >= w || y >= h ? 0 : data[(y * w + x) * 3 + c]);
  for (let v = Math.max(0, v0); v < Math.min(size, v0 + outH); v++) {
    for (let u = Math.max(0, u0); u < Math.min(size, u0 + outW); u++) {
      const [sx, sy] = applySimilarity(inv, [u, v]);
      const ix = Math.floor(sx);
      const iy = Math.floor(sy);
      if (ix < -1 || iy < -1 || ix >= w || iy >= h) continue;
      const X = Math.trunc((sx - ix) * ONE);
      const Y = Math.trunc((sy - iy) * ONE);
      const c4 = (Y * X) >> SHIFT;
      const c2 = ((ONE - Y) * X) >> SHIFT;
      const c3 = Y - c4;
      const c1 = ONE - Y - c2;
      const o = (v * size + u) * 3;
      for (let c = 0; c < 3; c++) {
        out[o + c] =
          (c1 * px(ix, iy, c) +
            c2 * px(ix + 1, iy, c) +
            c3 * px(ix, iy + 1, c) +
            c4 * px(ix + 1, iy + 1, c) +
            ONE / 2) >>
          SHIFT;
      }
    }
  }
  return { data: out, width: size, height: size, channels: 3 };
}
