/**
 * The library entry point: load weights once, describe many images.
 *
 * ```ts
 * const model = await VggFace.load({ weights: 'VGG_FACE.caffemodel' });
 * const [a, b] = await model.describe(['a.jpg', 'b.jpg']);          // 224x224 face crops, as given
 * for await (const photo of model.describeFaces(['group.jpg'])) {     // whole photos: every face found
 *   for (const { face, descriptor } of photo.faces ?? []) console.log(face.box, descriptor.length);
 * }
 * await model.close();
 * ```
 */
import { MAX_THREADS } from './options.js';
import { invalidParameterError } from './errors.js';
import { decodeBatch } from './image/batch.js';
import { inputLabel, type Fit, type ImageInput } from './image/decode.js';
import type { DescribeOptions, NormalizedDescribeOptions } from './describe-options.js';
import type { PreparedCrop, PreparedPhoto } from './describe-batches.js';
import { DescribingModel } from './describe-model.js';
import { INPUT_SIZE } from './weights/topology.js';
import {
  MODEL_INPUT,
  PRECISIONS,
  PREPROCESSING,
  type ModelOutput,
  type Precision,
  type Preprocessing,
} from './onnx/contract.js';
import type { InferenceEngine } from './runtime/onnxruntime.js';
import { openEngineInWorker } from './runtime/engine-worker.js';
import { cpuFeatures, needsExactInt8Kernels } from './runtime/cpu.js';
import { resolveModel, type ModelInfo, type ResolvedModel } from './model/cache.js';
import { defaultCacheDir } from './util/paths.js';
import { envValue } from './util/env.js';
import { ensureOfficialWeights } from './weights/official.js';
import type { DownloadProgress } from './util/download.js';
import type { FormatId, ReadOptions } from './weights/types.js';
import { formatIds } from './weights/formats.js';
import * as check from './validate.js';
import { FaceDetector, type DetectOptions, type ResolvedDetectOptions } from './face/detector.js';
import type { AlignOptions, ResolvedAlignOptions } from './face/align.js';
import { extractFacesSettled } from './face/pipeline.js';

export type { DescribeFacesResult, DescribePhotoResult, DescribeResult, FaceDescription } from './describe-results.js';

export { LAYERS, l2normalize, type DescribeOptions, type Layer } from './describe-options.js';

export interface LoadOptions {
  /**
   * Weights in any supported layout (detected by content), or a model converted by `vggface convert`.
   * Defaults to $VGGFACE_WEIGHTS, else the official Caffe release, downloaded into the cache on first use.
   */
  readonly weights?: string;
  /** Force a layout instead of detecting it. */
  readonly format?: FormatId;
  /**
   * `caffe` (default): RGB 0-255 minus the training mean, as the original. `deepface`: pixels scaled to 0-1, no mean.
   */
  readonly preprocessing?: Preprocessing;
  /**
   * Weight precision when converting weights: `fp32` (default, as published), `fp16` (half the file, same speed,
   * descriptor cosine to fp32 above 0.99999) or `int8` (a quarter of the file, 3.5x faster on a CPU with AVX-512 VNNI,
   * cosine to fp32 about 0.9997 on random weights of the real size; see README). A converted model given as `weights`
   * must already be of this precision.
   */
  readonly precision?: Precision;
  /**
   * int8 only: a directory of images (ideally face crops like those to be described) whose activations set the
   * quantization ranges. Default: a built-in synthetic set, which works offline.
   */
  readonly calibration?: string;
  /** Where converted models and downloads go; defaults to $VGGFACE_CACHE or ~/.cache/vggface. */
  readonly cacheDir?: string;
  /** ONNX Runtime intra-op threads; defaults to the number of cores. */
  readonly threads?: number;
  readonly readOptions?: ReadOptions;
  /** Called while the official weights download. */
  readonly onDownloadProgress?: (p: DownloadProgress) => void;
  /**
   * The YuNet face detector {@link VggFace.describeFaces} opens on first use: an ONNX file, default
   * $VGGFACE_DETECTOR_MODEL, else the published model downloaded into the cache.
   */
  readonly detectorModel?: string;
  /** Called while the detector model downloads. */
  readonly onDetectorDownloadProgress?: (p: DownloadProgress) => void;
}

/** Options of {@link VggFace.describeFaces}: what to describe, how to detect and how to align. */
export interface DescribeFacesOptions extends Omit<DescribeOptions, 'fit'>, DetectOptions, Omit<AlignOptions, 'size'> {
  /** A detector you opened; by default the model opens its own on first use and closes it with itself. */
  readonly detector?: FaceDetector;
}

/**
 * Options of {@link VggFace.describePhotos}: with `faces: 'none'` each image is described as given (a face crop,
 * brought to 224x224 by `fit`); otherwise the largest face of each photo is found, aligned and described.
 */
export interface DescribePhotosOptions extends DescribeFacesOptions {
  readonly faces?: 'largest' | 'none';
  /** Only with `faces: 'none'`. */
  readonly fit?: Fit;
}

export class VggFace extends DescribingModel<ImageInput, FaceDetector> {
  private constructor(
    private readonly engine: InferenceEngine,
    /** The ONNX file in use (a cached conversion, or the file given). */
    readonly modelPath: string,
    /** Preprocessing, precision and widths of the loaded model. */
    override readonly info: ModelInfo,
    /** Whether the model was given as ONNX, reused from the cache, or converted by this load. */
    readonly origin: ResolvedModel['origin'],
    /**
     * True when an int8 model with full-range weights (builder 1) runs on a CPU whose int8 kernels saturate (x86
     * without VNNI): ONNX Runtime's exact U8U8 kernels are used, correct but slower; converting again gives a model
     * that needs none.
     */
    readonly exactInt8Kernels: boolean,
    private readonly detectorOptions: {
      model?: string;
      cacheDir: string;
      threads?: number;
      onDownloadProgress?: (p: DownloadProgress) => void;
    },
  ) {
    // Inference runs in a worker thread (engine-worker.ts), so decoding the next batch overlaps it.
    super(true);
  }

  /** Loads weights (converting and caching them on first use) and opens an ONNX Runtime session. */
  static async load(options: LoadOptions = {}): Promise<VggFace> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    if (options.format !== undefined) check.oneOf('format', options.format, formatIds());
    if (options.preprocessing !== undefined) check.oneOf('preprocessing', options.preprocessing, PREPROCESSING);
    if (options.threads !== undefined) check.integer('threads', options.threads, 1, MAX_THREADS);
    if (options.precision !== undefined) check.oneOf('precision', options.precision, PRECISIONS);
    if (options.calibration !== undefined) check.nonEmptyString('calibration', options.calibration);
    const cacheDir = options.cacheDir ?? defaultCacheDir();
    const weights =
      options.weights ??
      envValue('weights') ??
      (await ensureOfficialWeights({ cacheDir, onProgress: options.onDownloadProgress }));
    check.nonEmptyString('weights', weights);
    const resolved = await resolveModel({
      weights,
      cacheDir,
      format: options.format,
      preprocessing: options.preprocessing,
      readOptions: options.readOptions,
      precision: options.precision,
      calibration: options.calibration,
      threads: options.threads,
    });
    if (options.detectorModel !== undefined) check.nonEmptyString('detectorModel', options.detectorModel);
    // In a worker thread: ONNX Runtime's run holds its thread, and this one must stay free to decode the next batch.
    const exactInt8Kernels = needsExactInt8Kernels(resolved.info.int8WeightLimit ?? 0, cpuFeatures());
    const engine = await openEngineInWorker(resolved.modelPath, { threads: options.threads, exactInt8Kernels });
    return new VggFace(engine, resolved.modelPath, resolved.info, resolved.origin, exactInt8Kernels, {
      model: options.detectorModel,
      cacheDir,
      threads: options.threads,
      onDownloadProgress: options.onDetectorDownloadProgress,
    });
  }

  protected override prepareCrops(
    items: readonly ImageInput[],
    start: number,
    o: NormalizedDescribeOptions,
  ): Promise<readonly PreparedCrop[]> {
    return decodeBatch(
      items.map((input, k) => ({ input, label: inputLabel(input, start + k) })),
      INPUT_SIZE,
      { fit: o.fit, maxPixels: o.maxPixels },
    );
  }

  protected override async prepareFaces(
    detector: FaceDetector,
    items: readonly ImageInput[],
    start: number,
    detect: ResolvedDetectOptions,
    align: ResolvedAlignOptions,
  ): Promise<readonly PreparedPhoto[]> {
    const labelled = items.map((input, k) => ({ input, label: inputLabel(input, start + k) }));
    const photos = await extractFacesSettled(detector, labelled, detect, align);
    return photos.map((p, k) =>
      p.error ? { label: labelled[k].label, error: p.error } : { label: labelled[k].label, faces: p.photo.faces },
    );
  }

  protected override isDetector(value: unknown): value is FaceDetector {
    return value instanceof FaceDetector;
  }

  protected override openDetector(): Promise<FaceDetector> {
    return FaceDetector.open(this.detectorOptions);
  }

  protected override runSession(
    pixels: Uint8Array,
    count: number,
    outputs: readonly ModelOutput[],
  ): Promise<Record<string, { readonly data: Float32Array }>> {
    return this.engine.run({ [MODEL_INPUT]: { data: pixels, dims: [count, INPUT_SIZE, INPUT_SIZE, 3] } }, outputs);
  }

  protected override closeSession(): Promise<void> {
    return this.engine.close();
  }
}
