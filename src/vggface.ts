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
import { VggFaceError, invalidParameterError } from './errors.js';
import { decodeBatch, type DecodedItem } from './image/batch.js';
import { inputLabel, type Fit, type ImageInput } from './image/decode.js';
import { l2normalize, normalizeDescribeOptions, type DescribeOptions, type Layer } from './describe-options.js';
import { INPUT_SIZE } from './weights/topology.js';
import {
  MODEL_INPUT,
  PRECISIONS,
  PREPROCESSING,
  type ModelOutput,
  type Precision,
  type Preprocessing,
} from './onnx/builder.js';
import type { InferenceEngine } from './runtime/onnxruntime.js';
import { openEngineInWorker } from './runtime/engine-worker.js';
import { cpuFeatures, needsExactInt8Kernels } from './runtime/cpu.js';
import { resolveModel, type ModelInfo, type ResolvedModel } from './runtime/model-cache.js';
import { defaultCacheDir } from './util/paths.js';
import { envValue } from './util/env.js';
import { ensureOfficialWeights } from './weights/official.js';
import type { DownloadProgress } from './util/download.js';
import type { FormatId, ReadOptions } from './weights/types.js';
import { formatIds } from './weights/formats.js';
import * as check from './validate.js';
import { FaceDetector, resolveDetectOptions, type DetectOptions } from './face/detector.js';
import { resolveAlignOptions, type AlignOptions } from './face/align.js';
import { extractFacesSettled } from './face/pipeline.js';
import type { DetectedFace } from './face/types.js';

export { LAYERS, l2normalize, type DescribeOptions, type Layer } from './describe-options.js';

export interface LoadOptions {
  /**
   * Weights in any supported layout (detected by content), or a model converted by `vggface convert`.
   * Defaults to $VGGFACE_WEIGHTS, else the official Caffe release, downloaded into the cache on first use.
   */
  readonly weights?: string;
  /** Force a layout instead of detecting it. */
  readonly format?: FormatId;
  /** `caffe` (default): RGB 0-255 minus the training mean, as the original. `deepface`: pixels scaled to 0-1, no mean. */
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

/** One input's outcome in {@link VggFace.describeEach}. */
export type DescribeResult =
  | { readonly index: number; readonly label: string; readonly descriptor: Float32Array; readonly error?: undefined }
  | { readonly index: number; readonly label: string; readonly descriptor?: undefined; readonly error: VggFaceError };

/** Options of {@link VggFace.describeFaces}: what to describe, how to detect and how to align. */
export interface DescribeFacesOptions extends Omit<DescribeOptions, 'fit'>, DetectOptions, Omit<AlignOptions, 'size'> {
  /** A detector you opened; by default the model opens its own on first use and closes it with itself. */
  readonly detector?: FaceDetector;
}

/** One face of a photo and its descriptor. */
export interface FaceDescription {
  readonly face: DetectedFace;
  readonly descriptor: Float32Array;
}

/** One photo's outcome in {@link VggFace.describeFaces}: its faces (largest first, possibly none) or its error. */
export type DescribeFacesResult =
  | {
      readonly index: number;
      readonly label: string;
      readonly faces: readonly FaceDescription[];
      readonly error?: undefined;
    }
  | { readonly index: number; readonly label: string; readonly faces?: undefined; readonly error: VggFaceError };

/**
 * Options of {@link VggFace.describePhotos}: with `faces: 'none'` each image is described as given (a face crop,
 * brought to 224x224 by `fit`); otherwise the largest face of each photo is found, aligned and described.
 */
export interface DescribePhotosOptions extends DescribeFacesOptions {
  readonly faces?: 'largest' | 'none';
  /** Only with `faces: 'none'`. */
  readonly fit?: Fit;
}

/** One photo's outcome in {@link VggFace.describePhotos}: its descriptor (and the face it is of), or its error. */
export type DescribePhotoResult = DescribeResult & {
  readonly face?: DetectedFace;
  /** Set with the error of a photo that was read but has no face (not an unreadable one): pair evaluation skips those. */
  readonly noFace?: true;
};

export class VggFace {
  private closed = false;
  /** The detector describeFaces opened for itself (closed with the model). */
  private ownDetector: Promise<FaceDetector> | undefined;

  private constructor(
    private readonly engine: InferenceEngine,
    /** The ONNX file in use (a cached conversion, or the file given). */
    readonly modelPath: string,
    /** Preprocessing, precision and widths of the loaded model. */
    readonly info: ModelInfo,
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
  ) {}

  /** Loads weights (converting and caching them on first use) and opens an ONNX Runtime session. */
  static async load(options: LoadOptions = {}): Promise<VggFace> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    if (options.format !== undefined) check.oneOf('format', options.format, formatIds());
    if (options.preprocessing !== undefined) check.oneOf('preprocessing', options.preprocessing, PREPROCESSING);
    if (options.threads !== undefined) check.integer('threads', options.threads, 1, 1024);
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

  /** Length of the vectors `describe` returns for `layer`. */
  dimension(layer: Layer = 'fc7'): number {
    return this.info.topology[layer];
  }

  /** Describes one image. */
  describe(input: ImageInput, options?: DescribeOptions): Promise<Float32Array>;
  /** Describes many images, batched; resolves in input order. Rejects on the first input that fails. */
  describe(inputs: readonly ImageInput[], options?: DescribeOptions): Promise<Float32Array[]>;
  async describe(
    inputs: ImageInput | readonly ImageInput[],
    options: DescribeOptions = {},
  ): Promise<Float32Array | Float32Array[]> {
    const list = Array.isArray(inputs) ? (inputs as readonly ImageInput[]) : [inputs as ImageInput];
    const out: Float32Array[] = [];
    for await (const r of this.describeEach(list, options)) {
      if (r.error) throw r.error;
      out.push(r.descriptor);
    }
    return Array.isArray(inputs) ? out : out[0];
  }

  /**
   * Describes many images as a stream of results in input order: an input that cannot be decoded yields its
   * error and the others go on. The next batch is decoded while the current one runs.
   */
  async *describeEach(inputs: Iterable<ImageInput>, options: DescribeOptions = {}): AsyncGenerator<DescribeResult> {
    this.assertOpen();
    const o = normalizeDescribeOptions(options, this.info.preprocessing === 'deepface' ? 'deepface' : 'crop');
    const list = [...inputs];
    const batches: { start: number; items: ImageInput[] }[] = [];
    for (let i = 0; i < list.length; i += o.batchSize)
      batches.push({ start: i, items: list.slice(i, i + o.batchSize) });
    const decode = (b: (typeof batches)[number]) =>
      decodeBatch(
        b.items.map((input, k) => ({ input, label: inputLabel(input, b.start + k) })),
        INPUT_SIZE,
        { fit: o.fit, maxPixels: o.maxPixels },
      );
    let next = batches.length > 0 ? decode(batches[0]) : undefined;
    let done = 0;
    for (let bi = 0; bi < batches.length; bi++) {
      const decoded = await next!;
      next = bi + 1 < batches.length ? decode(batches[bi + 1]) : undefined;
      const vectors = await this.runDecoded(decoded, o.layer, o.normalize);
      for (let k = 0; k < decoded.length; k++) {
        const item = decoded[k];
        const index = batches[bi].start + k;
        yield item.error
          ? { index, label: item.label, error: item.error }
          : { index, label: item.label, descriptor: vectors.get(k)! };
      }
      done += decoded.length;
      o.onProgress?.(done, list.length);
    }
  }

  /**
   * Describes every face in whole photos: each photo is decoded once (EXIF orientation applied), its faces found by
   * YuNet, aligned upright from the original pixels and described. Yields one result per photo, in input order;
   * a photo with no face yields `faces: []`, one that cannot be decoded yields its error and the others go on.
   * Photos are processed `batchSize` at a time, the next batch detected while the current one is described.
   */
  async *describeFaces(
    inputs: Iterable<ImageInput>,
    options: DescribeFacesOptions = {},
  ): AsyncGenerator<DescribeFacesResult> {
    this.assertOpen();
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    const {
      detector: given,
      align,
      margin,
      minScore,
      nmsThreshold,
      detectionSize,
      minFaceSize,
      maxFaces,
      ...describeOptions
    } = options;
    const o = normalizeDescribeOptions(describeOptions, 'crop'); // fit is unused: aligned crops are already 224x224
    const detect = resolveDetectOptions({
      minScore,
      nmsThreshold,
      detectionSize,
      minFaceSize,
      maxFaces,
      maxPixels: o.maxPixels,
    });
    const alignment = resolveAlignOptions({ align, margin, size: INPUT_SIZE });
    if (given !== undefined && !(given instanceof FaceDetector))
      throw invalidParameterError('detector', 'a FaceDetector', given);
    const detector = given ?? (await this.detector());
    const list = [...inputs];
    const chunks: { start: number; items: { input: ImageInput; label: string }[] }[] = [];
    for (let i = 0; i < list.length; i += o.batchSize) {
      chunks.push({
        start: i,
        items: list.slice(i, i + o.batchSize).map((input, k) => ({ input, label: inputLabel(input, i + k) })),
      });
    }
    const extract = (c: (typeof chunks)[number]) => extractFacesSettled(detector, c.items, detect, alignment);
    let next = chunks.length > 0 ? extract(chunks[0]) : undefined;
    let done = 0;
    for (let ci = 0; ci < chunks.length; ci++) {
      const photos = await next!;
      next = ci + 1 < chunks.length ? extract(chunks[ci + 1]) : undefined;
      const crops = photos.flatMap((p) => p.photo?.faces.map((f) => f.crop) ?? []);
      const vectors: Float32Array[] = [];
      for (let i = 0; i < crops.length; i += o.batchSize) {
        const batch = crops.slice(i, i + o.batchSize).map((image, k) => ({ label: `face #${i + k + 1}`, image }));
        const got = await this.runDecoded(batch, o.layer, o.normalize);
        batch.forEach((_, k) => vectors.push(got.get(k)!));
      }
      let v = 0;
      for (let k = 0; k < photos.length; k++) {
        const p = photos[k];
        const index = chunks[ci].start + k;
        const label = chunks[ci].items[k].label;
        if (p.error) yield { index, label, error: p.error };
        else yield { index, label, faces: p.photo.faces.map((f) => ({ face: f.face, descriptor: vectors[v++] })) };
      }
      done += photos.length;
      o.onProgress?.(done, list.length);
    }
  }

  /**
   * One descriptor per photo, the way verification and galleries need them: the largest face found in each photo
   * (a photo with no face yields an error saying so), or with `faces: 'none'` the image as given.
   */
  async *describePhotos(
    inputs: Iterable<ImageInput>,
    options: DescribePhotosOptions = {},
  ): AsyncGenerator<DescribePhotoResult> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    const { faces = 'largest', fit, ...rest } = options;
    check.oneOf('faces', faces, ['largest', 'none']);
    if (faces === 'none') {
      const { layer, normalize, batchSize, maxPixels, onProgress } = rest;
      yield* this.describeEach(inputs, { layer, normalize, batchSize, maxPixels, onProgress, fit });
      return;
    }
    if (fit !== undefined)
      throw invalidParameterError('fit', "undefined when faces are detected (use faces: 'none' for crops)", fit);
    for await (const r of this.describeFaces(inputs, { ...rest, maxFaces: 1 })) {
      if (r.error) yield { index: r.index, label: r.label, error: r.error };
      else if (r.faces.length === 0)
        yield {
          index: r.index,
          label: r.label,
          error: new VggFaceError('E_IMAGE', `${r.label}: no face found`, { input: r.label }),
          noFace: true,
        };
      else yield { index: r.index, label: r.label, descriptor: r.faces[0].descriptor, face: r.faces[0].face };
    }
  }

  /** The detector describeFaces uses when none is given: opened once, on first use. */
  private detector(): Promise<FaceDetector> {
    if (!this.ownDetector) {
      const opening = FaceDetector.open(this.detectorOptions);
      this.ownDetector = opening;
      // A failed open is not kept, so a later call (e.g. once the network is back) tries again.
      opening.catch(() => {
        if (this.ownDetector === opening) this.ownDetector = undefined;
      });
    }
    return this.ownDetector;
  }

  /**
   * Runs the network on `count` images of 224x224 RGB already packed in `pixels` (count*224*224*3 bytes)
   * and returns the requested outputs, each a [count, width] row-major array.
   */
  async run(pixels: Uint8Array, count: number, outputs: readonly ModelOutput[]): Promise<Record<string, Float32Array>> {
    this.assertOpen();
    const per = INPUT_SIZE * INPUT_SIZE * 3;
    if (pixels.length !== count * per)
      throw invalidParameterError('pixels', `${count * per} bytes (${count} x 224x224x3)`, pixels);
    const res = await this.engine.run(
      { [MODEL_INPUT]: { data: pixels, dims: [count, INPUT_SIZE, INPUT_SIZE, 3] } },
      outputs,
    );
    const out: Record<string, Float32Array> = {};
    for (const name of outputs) out[name] = res[name].data;
    return out;
  }

  private async runDecoded(
    decoded: DecodedItem[],
    layer: Layer,
    normalize: boolean,
  ): Promise<Map<number, Float32Array>> {
    const ok = decoded.map((d, k) => ({ d, k })).filter((x) => x.d.image);
    const result = new Map<number, Float32Array>();
    if (ok.length === 0) return result;
    const per = INPUT_SIZE * INPUT_SIZE * 3;
    const pixels = new Uint8Array(ok.length * per);
    ok.forEach((x, i) => pixels.set(x.d.image!.data, i * per));
    const output: ModelOutput = layer === 'fc7' && normalize ? 'descriptor' : layer;
    const data = (await this.run(pixels, ok.length, [output]))[output];
    const width = this.dimension(layer);
    ok.forEach((x, i) => {
      const v = data.slice(i * width, (i + 1) * width);
      result.set(x.k, normalize && output !== 'descriptor' ? l2normalize(v) : v);
    });
    return result;
  }

  /** Releases the ONNX Runtime session. The instance cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const detector = this.ownDetector;
    this.ownDetector = undefined;
    await this.engine.close();
    if (detector) await (await detector.catch(() => undefined))?.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new VggFaceError('E_USAGE', 'this VggFace model was closed');
  }
}
