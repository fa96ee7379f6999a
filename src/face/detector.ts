/**
 * Face detection with YuNet on ONNX Runtime, usable on its own (no descriptor model needed):
 *
 * ```ts
 * const detector = await FaceDetector.open();
 * const faces = await detector.detect('group.jpg');   // boxes, scores, 5 landmarks in the photo's pixels
 * await detector.close();
 * ```
 */
import { VggFaceError, invalidParameterError } from '../errors.js';
import { decodeImage, inputLabel, type ImageInput, type RawImage } from '../image/decode.js';
import { openEngine, type InferenceEngine } from '../runtime/onnxruntime.js';
import type { DownloadProgress } from '../util/download.js';
import { defaultCacheDir } from '../util/paths.js';
import * as check from '../validate.js';
import { ensureDetectorModel } from './detector-model.js';
import { letterbox, unletterbox } from './letterbox.js';
import { nonMaxSuppression } from './nms.js';
import type { DetectedFace } from './types.js';
import { decodeYuNet, YUNET_INPUT, YUNET_OUTPUTS } from './yunet.js';

export interface FaceDetectorOptions {
  /** A YuNet ONNX file; defaults to $VGGFACE_DETECTOR_MODEL, else the published model, downloaded into the cache on first use. */
  readonly model?: string;
  /** Defaults to $VGGFACE_CACHE or ~/.cache/vggface. */
  readonly cacheDir?: string;
  /** ONNX Runtime intra-op threads; defaults to the number of cores. */
  readonly threads?: number;
  readonly onDownloadProgress?: (p: DownloadProgress) => void;
}

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
    nmsThreshold: options.nmsThreshold === undefined ? DEFAULT_NMS_THRESHOLD : check.number('nmsThreshold', options.nmsThreshold, 0, 1),
    detectionSize: options.detectionSize === undefined ? DEFAULT_DETECTION_SIZE : check.integer('detectionSize', options.detectionSize, 32, 8192),
    minFaceSize: options.minFaceSize === undefined ? 0 : check.number('minFaceSize', options.minFaceSize, 0, 1e6),
    maxFaces: options.maxFaces === undefined ? Infinity : check.integer('maxFaces', options.maxFaces, 1, 100_000),
    maxPixels: options.maxPixels === undefined ? undefined : check.integer('maxPixels', options.maxPixels, 1, Number.MAX_SAFE_INTEGER),
  };
}

const area = (f: DetectedFace) => f.box.width * f.box.height;

export class FaceDetector {
  private closed = false;

  private constructor(
    private readonly engine: InferenceEngine,
    /** The YuNet ONNX file in use. */
    readonly modelPath: string,
  ) {}

  /** Opens the detector, fetching the published model into the cache first if no model is given. */
  static async open(options: FaceDetectorOptions = {}): Promise<FaceDetector> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    if (options.model !== undefined) check.nonEmptyString('model', options.model);
    if (options.threads !== undefined) check.integer('threads', options.threads, 1, 1024);
    const modelPath = await ensureDetectorModel({ model: options.model, cacheDir: options.cacheDir ?? defaultCacheDir(), onProgress: options.onDownloadProgress });
    const engine = await openEngine(modelPath, { threads: options.threads });
    return new FaceDetector(engine, modelPath);
  }

  /** Decodes a photo (EXIF orientation applied) and finds its faces, largest first. */
  async detect(input: ImageInput, options: DetectOptions = {}): Promise<DetectedFace[]> {
    const o = resolveDetectOptions(options);
    const image = await decodeImage(input, inputLabel(input, 0), { maxPixels: o.maxPixels });
    return this.detectDecoded(image, o);
  }

  /** Finds the faces of an already decoded RGB image, largest first, in its pixel coordinates. */
  async detectDecoded(image: RawImage, options: ResolvedDetectOptions): Promise<DetectedFace[]> {
    if (this.closed) throw new VggFaceError('E_USAGE', 'this FaceDetector was closed');
    const lb = await letterbox(image, options.detectionSize);
    const out = await this.engine.run({ [YUNET_INPUT]: { data: lb.tensor, dims: [1, 3, lb.height, lb.width] } }, YUNET_OUTPUTS);
    const candidates = decodeYuNet(out, lb.width, lb.height, options.minScore);
    return nonMaxSuppression(candidates, options.nmsThreshold)
      .map((f) => unletterbox(f, lb.scaleX, lb.scaleY))
      .filter((f) => Math.min(f.box.width, f.box.height) >= options.minFaceSize)
      .sort((a, b) => area(b) - area(a))
      .slice(0, options.maxFaces);
  }

  /** Releases the ONNX Runtime session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.engine.close();
  }
}
