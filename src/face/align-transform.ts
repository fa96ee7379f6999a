/**
 * Face alignment: a similarity transform that brings the detected landmarks onto a canonical upright face, applied
 * to the original pixels in one resampling step (align.ts in Node, the browser's own warp) to give a size x size crop.
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
 *
 * Pure geometry, importing nothing Node-specific: Node (align.ts) and the browser build (src/browser) share it.
 */
import { invalidParameterError } from '../errors.js';
import { FACE_OPTIONS, resolveOption, type AlignMode } from '../options.js';
import * as check from '../validate.js';
import { applySimilarity, fitScaleAndShift, fitSimilarity, isInvertible, type Similarity } from './similarity.js';
import { LANDMARK_NAMES, type DetectedFace, type Landmarks, type Point } from './types.js';

export { ALIGN_MODES, type AlignMode } from '../options.js';
export const DEFAULT_ALIGN: AlignMode = FACE_OPTIONS.align.default;
export const DEFAULT_MARGIN = FACE_OPTIONS.margin.default;
/** The widest margin accepted: the face would fill 1/9 of the crop. */
export const MAX_MARGIN = FACE_OPTIONS.margin.max;

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
    align: resolveOption(FACE_OPTIONS.align, options.align),
    margin: resolveOption(FACE_OPTIONS.margin, options.margin),
    size: resolveOption(FACE_OPTIONS.size, options.size),
  };
}

const points = (l: Landmarks): Point[] => LANDMARK_NAMES.map((n) => l[n]);

/** The template's landmarks in the pixel coordinates of a size x size crop with the given margin. */
export function templateInCrop(size: number, margin: number): Landmarks {
  const k = size / (1 + 2 * margin);
  const px = (p: Point): Point => [(p[0] + margin) * k - 0.5, (p[1] + margin) * k - 0.5];
  return Object.fromEntries(LANDMARK_NAMES.map((n) => [n, px(UNIT_TEMPLATE[n])])) as unknown as Landmarks;
}

/** The box, squared around its centre, scaled to the crop, unrotated. */
function boxTransform(face: DetectedFace, { margin, size }: ResolvedAlignOptions): Similarity {
  const side = Math.max(face.box.width, face.box.height);
  const s = size / ((1 + 2 * margin) * side);
  const cx = face.box.x + face.box.width / 2;
  const cy = face.box.y + face.box.height / 2;
  const t = { a: s, b: 0, tx: (size - 1) / 2 - s * cx, ty: (size - 1) / 2 - s * cy };
  if (!isInvertible(t))
    throw invalidParameterError(
      'face.box',
      'a box with finite coordinates and a positive width or height',
      JSON.stringify(face.box),
    );
  return t;
}

/** The landmark fit of `eyes` or `5pt`; throws a RangeError when the landmarks fit no upright face. */
function landmarkTransform(face: DetectedFace, { align, margin, size }: ResolvedAlignOptions): Similarity {
  const template = templateInCrop(size, margin);
  if (align === 'eyes') {
    // The rotation that takes the eye line onto the template's (level) eye line.
    const [ex, ey] = [
      face.landmarks.leftEye[0] - face.landmarks.rightEye[0],
      face.landmarks.leftEye[1] - face.landmarks.rightEye[1],
    ];
    const [tx, ty] = [template.leftEye[0] - template.rightEye[0], template.leftEye[1] - template.rightEye[1]];
    return fitScaleAndShift(points(face.landmarks), points(template), [ex * tx + ey * ty, ex * ty - ey * tx]);
  }
  return fitSimilarity(points(face.landmarks), points(template));
}

/**
 * The transform from photo pixels to crop pixels for one face. Landmarks that fit no upright face (all at one
 * spot, or the eyes the wrong way round against the mouth: YuNet's low-scored candidates, kept with --min-score
 * near 0) give the box's transform instead, so every detection has a crop.
 */
export function alignmentTransform(face: DetectedFace, options: ResolvedAlignOptions): Similarity {
  if (options.align === 'none') return boxTransform(face, options);
  try {
    const t = landmarkTransform(face, options);
    if (isInvertible(t)) return t;
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
  }
  return boxTransform(face, options);
}

/** Maps a face's landmarks through a transform (e.g. into its aligned crop). */
export function transformLandmarks(l: Landmarks, s: Similarity): Landmarks {
  return Object.fromEntries(LANDMARK_NAMES.map((n) => [n, applySimilarity(s, l[n])])) as unknown as Landmarks;
}
