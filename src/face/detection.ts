/**
 * Detection without a runtime: the options, and a photo to faces given two primitives, scaling pixels down and
 * running YuNet. Pure (imports nothing Node-specific): Node's FaceDetector (detector.ts, sharp and onnxruntime-node)
 * and the browser build (src/browser, canvas and onnxruntime-web) run the same steps.
 */
import { invalidParameterError } from '../errors.js';
import type { RawImage } from '../image/types.js';
import { DESCRIBE_OPTIONS, FACE_OPTIONS, optionalOption, resolveOption } from '../options.js';
import * as check from '../validate.js';
import { letterbox, unletterbox, type Resize } from './letterbox.js';
import { nonMaxSuppression } from './nms.js';
import type { DetectedFace } from './types.js';
import { decodeYuNet, type YuNetOutputs } from './yunet.js';

/** Defined in options.ts (FACE_OPTIONS; maxPixels: DESCRIBE_OPTIONS); the defaults below repeat them for the reader. */
export interface DetectOptions {
  /** Smallest detection score kept, 0..1; default 0.75 (see FACE_OPTIONS.minScore for why). */
  readonly minScore?: number;
  /** Boxes overlapping a better one by more than this IoU are dropped; default 0.3 (as OpenCV Zoo). */
  readonly nmsThreshold?: number;
  /**
   * Photos are scaled down (never up) so their longer side is at most this many pixels before detection; default 1024.
   */
  readonly detectionSize?: number;
  /** Faces whose box is smaller than this many pixels (shorter side, in the photo) are dropped; default 0. */
  readonly minFaceSize?: number;
  /** Keep at most this many faces, the largest; default all. */
  readonly maxFaces?: number;
  /** Refuse photos with more pixels than this (default 100 MP). */
  readonly maxPixels?: number;
}

export interface ResolvedDetectOptions {
  readonly minScore: number;
  readonly nmsThreshold: number;
  readonly detectionSize: number;
  readonly minFaceSize: number;
  readonly maxFaces: number;
  readonly maxPixels: number | undefined;
}

export const DEFAULT_MIN_SCORE = FACE_OPTIONS.minScore.default;
export const DEFAULT_NMS_THRESHOLD = FACE_OPTIONS.nmsThreshold.default;
export const DEFAULT_DETECTION_SIZE = FACE_OPTIONS.detectionSize.default;

/** Validates detection options once, for the library and the CLI alike. */
export function resolveDetectOptions(options: DetectOptions = {}): ResolvedDetectOptions {
  if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
  const o = FACE_OPTIONS;
  return {
    minScore: resolveOption(o.minScore, options.minScore),
    nmsThreshold: resolveOption(o.nmsThreshold, options.nmsThreshold),
    detectionSize: resolveOption(o.detectionSize, options.detectionSize),
    minFaceSize: resolveOption(o.minFaceSize, options.minFaceSize),
    maxFaces: resolveOption(o.maxFaces, options.maxFaces),
    // Left undefined when not given: decoding applies the same default (DEFAULT_MAX_PIXELS).
    maxPixels: optionalOption(DESCRIBE_OPTIONS.maxPixels, options.maxPixels),
  };
}

const area = (f: DetectedFace) => f.box.width * f.box.height;

/**
 * Whether any of the photo is under the box (pixel centres at integers, so the photo spans -0.5..width-0.5): cells
 * in the black padding that keeps the detector's input a multiple of 32 can score above a low --min-score.
 */
const overlapsImage = (f: DetectedFace, image: RawImage) =>
  f.box.x < image.width - 0.5 &&
  f.box.y < image.height - 0.5 &&
  f.box.x + f.box.width > -0.5 &&
  f.box.y + f.box.height > -0.5;

/** What detection needs from its platform. */
export interface DetectionRuntime {
  /** Scales RGB pixels down to width x height (the detector's copy of a large photo). */
  readonly resize: Resize;
  /** Runs YuNet on a [1, 3, height, width] BGR 0-255 tensor. */
  run(tensor: Float32Array, width: number, height: number): Promise<YuNetOutputs>;
}

/** Finds the faces of a decoded RGB image, largest first, in its pixel coordinates. */
export async function findFaces(
  image: RawImage,
  options: ResolvedDetectOptions,
  runtime: DetectionRuntime,
): Promise<DetectedFace[]> {
  const lb = await letterbox(image, options.detectionSize, runtime.resize);
  const out = await runtime.run(lb.tensor, lb.width, lb.height);
  const candidates = decodeYuNet(out, lb.width, lb.height, options.minScore);
  return nonMaxSuppression(candidates, options.nmsThreshold)
    .map((f) => unletterbox(f, lb.scaleX, lb.scaleY))
    .filter((f) => overlapsImage(f, image) && Math.min(f.box.width, f.box.height) >= options.minFaceSize)
    .sort((a, b) => area(b) - area(a))
    .slice(0, options.maxFaces);
}
