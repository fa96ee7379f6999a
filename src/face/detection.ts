/**
 * Detection without a runtime: the options, and a photo to faces given two primitives, scaling pixels down and
 * running YuNet. Pure (imports nothing Node-specific): Node's FaceDetector (detector.ts, sharp and onnxruntime-node)
 * and the browser build (src/browser, canvas and onnxruntime-web) run the same steps.
 */
import { invalidParameterError } from '../errors.js';
import type { RawImage } from '../image/decode.js';
import * as check from '../validate.js';
import { letterbox, unletterbox, type Resize } from './letterbox.js';
import { nonMaxSuppression } from './nms.js';
import type { DetectedFace } from './types.js';
import { decodeYuNet, type YuNetOutputs } from './yunet.js';

export interface DetectOptions {
  /**
   * Smallest detection score kept, 0..1; default 0.75. (OpenCV Zoo uses 0.9, which on the test photos drops faces
   * cut by the frame edge or turned away, scored 0.80-0.85, while nothing that is not a face scored above 0.68.)
   */
  readonly minScore?: number;
  /** Boxes overlapping a better one by more than this IoU are dropped; default 0.3 (as OpenCV Zoo). */
  readonly nmsThreshold?: number;
  /** Photos are scaled down (never up) so their longer side is at most this many pixels before detection; default 1024. */
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

export const DEFAULT_MIN_SCORE = 0.75;
export const DEFAULT_NMS_THRESHOLD = 0.3;
export const DEFAULT_DETECTION_SIZE = 1024;

/** Validates detection options once, for the library and the CLI alike. */
export function resolveDetectOptions(options: DetectOptions = {}): ResolvedDetectOptions {
  if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
  return {
    minScore: options.minScore === undefined ? DEFAULT_MIN_SCORE : check.number('minScore', options.minScore, 0, 1),
    nmsThreshold:
      options.nmsThreshold === undefined
        ? DEFAULT_NMS_THRESHOLD
        : check.number('nmsThreshold', options.nmsThreshold, 0, 1),
    detectionSize:
      options.detectionSize === undefined
        ? DEFAULT_DETECTION_SIZE
        : check.integer('detectionSize', options.detectionSize, 32, 8192),
    minFaceSize: options.minFaceSize === undefined ? 0 : check.number('minFaceSize', options.minFaceSize, 0, 1e6),
    maxFaces: options.maxFaces === undefined ? Infinity : check.integer('maxFaces', options.maxFaces, 1, 100_000),
    maxPixels:
      options.maxPixels === undefined
        ? undefined
        : check.integer('maxPixels', options.maxPixels, 1, Number.MAX_SAFE_INTEGER),
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
