/**
 * Face alignment: a similarity transform that brings the detected landmarks onto a canonical upright face, applied
 * to the original pixels in one resampling step (sharp/libvips `affine`, bilinear) to give a size x size crop.
 *
 * - `eyes` (default): the rotation that makes the eye line level, with scale and position fitted by least squares to
 *   all five landmarks (so a turned head is not over-zoomed as with the eye distance alone). Eyes come out exactly
 *   level, which is what "upright" means for the descriptor.
 * - `5pt`: the least-squares similarity (Umeyama) of all five landmarks onto the template, as ArcFace-style
 *   pipelines do; best overall fit, but on turned or partly hidden faces the eye line can stay tilted by 2-5 degrees.
 * - `none`: no rotation: the detection box, squared around its centre, scaled to the crop.
 *
 * `margin` widens the crop around the face: the template square (forehead to chin, as ArcFace's 112x112 crop)
 * fills 1 / (1 + 2 * margin) of the output side.
 */
import sharp from 'sharp';
import type { RawImage } from '../image/decode.js';
import { invalidParameterError } from '../errors.js';
import * as check from '../validate.js';
import { applySimilarity, fitScaleAndShift, fitSimilarity, invertSimilarity, type Similarity } from './similarity.js';
import { LANDMARK_NAMES, type DetectedFace, type Landmarks, type Point } from './types.js';

export type AlignMode = 'none' | 'eyes' | '5pt';
export const ALIGN_MODES: readonly AlignMode[] = ['none', 'eyes', '5pt'];
export const DEFAULT_ALIGN: AlignMode = 'eyes';
export const DEFAULT_MARGIN = 0.2;
/** The widest margin accepted: the face would fill 1/9 of the crop. */
export const MAX_MARGIN = 4;

/**
 * The canonical face in unit coordinates (0..1 across the template square): ArcFace's five-point template
 * (Deng et al. 2019, for 112x112 crops) made left-right symmetric, so aligned eyes and mouth corners are level.
 */
export const UNIT_TEMPLATE: Landmarks = {
  rightEye: [0.342699, 0.460704],
  leftEye: [0.657301, 0.460704],
  noseTip: [0.5, 0.640505],
  mouthRight: [0.369729, 0.823971],
  mouthLeft: [0.630271, 0.823971],
};

export interface AlignOptions {
  /** Default `eyes`. */
  readonly align?: AlignMode;
  /** Extra room around the face on each side, as a fraction of the face template; default 0.2. */
  readonly margin?: number;
  /** Crop side in pixels; default 224 (VGG-Face's input). */
  readonly size?: number;
}

export interface ResolvedAlignOptions {
  readonly align: AlignMode;
  readonly margin: number;
  readonly size: number;
}

export function resolveAlignOptions(options: AlignOptions = {}): ResolvedAlignOptions {
  if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
  return {
    align: options.align === undefined ? DEFAULT_ALIGN : check.oneOf('align', options.align, ALIGN_MODES),
    margin: options.margin === undefined ? DEFAULT_MARGIN : check.number('margin', options.margin, 0, MAX_MARGIN),
    size: options.size === undefined ? 224 : check.integer('size', options.size, 16, 4096),
  };
}

const points = (l: Landmarks): Point[] => LANDMARK_NAMES.map((n) => l[n]);

/** The template's landmarks in the pixel coordinates of a size x size crop with the given margin. */
export function templateInCrop(size: number, margin: number): Landmarks {
  const k = size / (1 + 2 * margin);
  const px = (p: Point): Point => [(p[0] + margin) * k - 0.5, (p[1] + margin) * k - 0.5];
  return Object.fromEntries(LANDMARK_NAMES.map((n) => [n, px(UNIT_TEMPLATE[n])])) as unknown as Landmarks;
}

/** The transform from photo pixels to crop pixels for one face. */
export function alignmentTransform(face: DetectedFace, options: ResolvedAlignOptions): Similarity {
  const { align, margin, size } = options;
  if (align === 'none') {
    const side = Math.max(face.box.width, face.box.height);
    const s = size / ((1 + 2 * margin) * side);
    const cx = face.box.x + face.box.width / 2;
    const cy = face.box.y + face.box.height / 2;
    return { a: s, b: 0, tx: (size - 1) / 2 - s * cx, ty: (size - 1) / 2 - s * cy };
  }
  const template = templateInCrop(size, margin);
  if (align === 'eyes') {
    // The rotation that takes the eye line onto the template's (level) eye line.
    const [ex, ey] = [face.landmarks.leftEye[0] - face.landmarks.rightEye[0], face.landmarks.leftEye[1] - face.landmarks.rightEye[1]];
    const [tx, ty] = [template.leftEye[0] - template.rightEye[0], template.leftEye[1] - template.rightEye[1]];
    return fitScaleAndShift(points(face.landmarks), points(template), [ex * tx + ey * ty, ex * ty - ey * tx]);
  }
  return fitSimilarity(points(face.landmarks), points(template));
}

/** Maps a face's landmarks through a transform (e.g. into its aligned crop). */
export function transformLandmarks(l: Landmarks, s: Similarity): Landmarks {
  return Object.fromEntries(LANDMARK_NAMES.map((n) => [n, applySimilarity(s, l[n])])) as unknown as Landmarks;
}

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
  const corners = [[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]].map((c) => applySimilarity(inv, c as unknown as Point));
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
  const regionCorners = [[0, 0], [w, 0], [0, h], [w, h]].map(([x, y]) => [a * x - b * y, b * x + a * y]);
  const lx = rint(Math.min(...regionCorners.map((c) => c[0])));
  const ly = rint(Math.min(...regionCorners.map((c) => c[1])));
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extract({ left: x0, top: y0, width: w, height: h })
    .affine([[a, -b], [b, a]], { odx: offX - kx, ody: offY - ky, interpolator: sharp.interpolators.bilinear, background: { r: 0, g: 0, b: 0 } })
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
export async function alignFace(image: RawImage, face: DetectedFace, options: ResolvedAlignOptions): Promise<{ crop: RawImage; transform: Similarity }> {
  const transform = alignmentTransform(face, options);
  return { crop: await warpToCrop(image, transform, options.size), transform };
}
