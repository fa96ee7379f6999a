/**
 * Face detection with YuNet on ONNX Runtime, usable on its own (no descriptor model needed):
 *
 * ```ts
 * const detector = await FaceDetector.open();
 * const faces = await detector.detect('group.jpg');   // boxes, scores, 5 landmarks in the photo's pixels
 * await detector.close();
 * ```
 */
import { MAX_THREADS } from '../options.js';
import sharp from 'sharp';
import { VggFaceError, invalidParameterError } from '../errors.js';
import { decodeImage, inputLabel, type ImageInput } from '../image/decode.js';
import type { RawImage } from '../image/types.js';
import { openEngine, type InferenceEngine } from '../runtime/onnxruntime.js';
import type { DownloadProgress } from '../util/download.js';
import { defaultCacheDir } from '../util/paths.js';
import * as check from '../validate.js';
import { ensureDetectorModel } from './detector-model.js';
import { findFaces, resolveDetectOptions, type DetectOptions, type ResolvedDetectOptions } from './detection.js';
import type { DetectedFace } from './types.js';
import { YUNET_INPUT, YUNET_OUTPUTS } from './yunet.js';

export * from './detection.js';

export interface FaceDetectorOptions {
  /**
   * A YuNet ONNX file; defaults to $VGGFACE_DETECTOR_MODEL, else the published model, downloaded into the cache on
   * first use.
   */
  readonly model?: string;
  /** Defaults to $VGGFACE_CACHE or ~/.cache/vggface. */
  readonly cacheDir?: string;
  /** ONNX Runtime intra-op threads; defaults to the number of cores. */
  readonly threads?: number;
  readonly onDownloadProgress?: (p: DownloadProgress) => void;
}

/** Scales RGB pixels with libvips (lanczos3), for the detector's smaller copy of a photo. */
async function sharpResize(image: RawImage, width: number, height: number): Promise<Uint8Array> {
  const { data } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return data;
}

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
    if (options.threads !== undefined) check.integer('threads', options.threads, 1, MAX_THREADS);
    const modelPath = await ensureDetectorModel({
      model: options.model,
      cacheDir: options.cacheDir ?? defaultCacheDir(),
      onProgress: options.onDownloadProgress,
    });
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
    return findFaces(image, options, {
      resize: sharpResize,
      run: (tensor, width, height) =>
        this.engine.run({ [YUNET_INPUT]: { data: tensor, dims: [1, 3, height, width] } }, YUNET_OUTPUTS),
    });
  }

  /** Releases the ONNX Runtime session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.engine.close();
  }
}
