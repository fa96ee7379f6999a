/**
 * Prepares a decoded photo for YuNet: scaled down (never up) so its longer side is at most `maxSide`, then padded
 * with black on the right and bottom to multiples of 32, as BGR 0-255 float32 NCHW. Padding at the far edges
 * keeps the origin, so mapping back is one scale factor. The scaling itself is the caller's (sharp in Node, a
 * canvas in the browser): this module is pure.
 */
import type { RawImage } from '../image/types.js';
import type { DetectedFace, Point } from './types.js';
import { YUNET_ALIGN } from './yunet.js';

export interface Letterboxed {
  /** [1, 3, height, width] BGR. */
  readonly tensor: Float32Array;
  readonly width: number;
  readonly height: number;
  /** Detector pixels per original pixel along each axis (<= 1; equal but for rounding to whole pixels). */
  readonly scaleX: number;
  readonly scaleY: number;
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Scales RGB pixels to width x height (RGB, row-major). */
export type Resize = (image: RawImage, width: number, height: number) => Promise<Uint8Array>;

export async function letterbox(image: RawImage, maxSide: number, resize: Resize): Promise<Letterboxed> {
  const scale = Math.min(1, maxSide / Math.max(image.width, image.height));
  let pixels = image.data;
  let w = image.width;
  let h = image.height;
  if (scale < 1) {
    w = Math.max(1, Math.round(image.width * scale));
    h = Math.max(1, Math.round(image.height * scale));
    pixels = await resize(image, w, h);
  }
  const width = roundUp(w, YUNET_ALIGN);
  const height = roundUp(h, YUNET_ALIGN);
  const plane = width * height;
  const tensor = new Float32Array(3 * plane);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const src = (y * w + x) * 3;
      const dst = y * width + x;
      tensor[dst] = pixels[src + 2]; // B
      tensor[plane + dst] = pixels[src + 1]; // G
      tensor[2 * plane + dst] = pixels[src]; // R
    }
  }
  return { tensor, width, height, scaleX: w / image.width, scaleY: h / image.height };
}

/** Maps a face found on the letterboxed tensor back to original pixel coordinates (pixel centres at integers). */
export function unletterbox(face: DetectedFace, scaleX: number, scaleY: number): DetectedFace {
  const px = (p: Point): Point => [(p[0] + 0.5) / scaleX - 0.5, (p[1] + 0.5) / scaleY - 0.5];
  const l = face.landmarks;
  const [x, y] = px([face.box.x, face.box.y]);
  return {
    box: { x, y, width: face.box.width / scaleX, height: face.box.height / scaleY },
    score: face.score,
    landmarks: {
      rightEye: px(l.rightEye),
      leftEye: px(l.leftEye),
      noseTip: px(l.noseTip),
      mouthRight: px(l.mouthRight),
      mouthLeft: px(l.mouthLeft),
    },
  };
}
