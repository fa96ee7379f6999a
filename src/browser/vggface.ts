/**
 * VGG-Face in the browser: the Node library's VggFace (src/vggface.ts) with the same method names, options,
 * results and errors, on onnxruntime-web. The model is a converted `.onnx` (vggface convert), given as a URL, a
 * File/Blob or bytes; photos never leave the page.
 *
 * ```js
 * import { VggFace, distance } from 'vggface/browser';
 * const model = await VggFace.load({
 *   model: '/models/vgg_face_int8.onnx',
 *   detectorModel: '/models/face_detection_yunet_2023mar.onnx',
 * });
 * const [a, b] = await model.describe([fileA, fileB]);                 // face crops, as given
 * for await (const photo of model.describeFaces([file])) console.log(photo.faces);   // whole photos
 * console.log(distance(a, b));
 * ```
 */
import type { PreparedCrop, PreparedPhoto } from '../describe-batches.js';
import { DescribingModel } from '../describe-model.js';
import type { DescribeOptions, NormalizedDescribeOptions } from '../describe-options.js';
import { VggFaceError, invalidParameterError } from '../errors.js';
import type { AlignOptions, ResolvedAlignOptions } from '../face/align-transform.js';
import type { DetectOptions, ResolvedDetectOptions } from '../face/detection.js';
import type { DetectedFace } from '../face/types.js';
import type { RawImage } from '../image/types.js';
import type { ModelInfo } from '../onnx/contract.js';
import type { DownloadProgress } from '../util/download.js';
import * as check from '../validate.js';
import { INPUT_SIZE } from '../weights/topology.js';
import type { DescribeFacesResult, DescribePhotoResult, DescribeResult, FaceDescription } from '../describe-results.js';
import { FaceDetector, resolveRuntime, type RuntimeLoadOptions } from './detector.js';
import { openEngine } from './engine.js';
import { inputLabel, type BrowserImageInput } from './image.js';
import { MODEL_INPUT, modelInfo, readOnnxInterface, type ModelOutput } from './model-info.js';
import { readModel, type ModelSource } from './model.js';
import type { EngineSession } from './engine.js';

export type { DescribeFacesResult, DescribePhotoResult, DescribeResult, FaceDescription };

export interface LoadOptions extends RuntimeLoadOptions {
  /** The converted model (`vggface convert`, any precision): a URL, a File/Blob, an ArrayBuffer or a Uint8Array. */
  readonly model: ModelSource;
  /** Called while a model given as a URL downloads. */
  readonly onDownloadProgress?: (p: DownloadProgress) => void;
  /** The YuNet model {@link VggFace.describeFaces} opens on first use (a URL, File/Blob or bytes). */
  readonly detectorModel?: ModelSource;
  readonly onDetectorDownloadProgress?: (p: DownloadProgress) => void;
}

/** Options of {@link VggFace.describeFaces}: what to describe, how to detect and how to align. */
export interface DescribeFacesOptions extends Omit<DescribeOptions, 'fit'>, DetectOptions, Omit<AlignOptions, 'size'> {
  /** A detector you opened; by default the model opens its own (from `detectorModel`) and closes it with itself. */
  readonly detector?: FaceDetector;
}

export interface DescribePhotosOptions extends DescribeFacesOptions {
  readonly faces?: 'largest' | 'none';
  readonly fit?: DescribeOptions['fit'];
}

const asError = (err: unknown, label: string): VggFaceError =>
  err instanceof VggFaceError
    ? err
    : new VggFaceError('E_IMAGE', `${label}: ${(err as Error)?.message ?? String(err)}`, { input: label, cause: err });

export class VggFace extends DescribingModel<BrowserImageInput, FaceDetector> {
  private constructor(
    private readonly session: EngineSession,
    /** Names the model in messages: its URL or file name. */
    readonly modelLabel: string,
    /** Preprocessing, precision and widths of the loaded model (from its metadata), as Node's `info`. */
    override readonly info: ModelInfo,
    private readonly load: LoadOptions,
  ) {
    // The pixel work runs in the Web Worker that runs inference: each batch is prepared once the last is done.
    super(false);
  }

  /** What runs the model: `webgpu`, or `wasm` (with {@link threads} threads). */
  get backend(): EngineSession['backend'] {
    return this.session.backend;
  }

  get threads(): number {
    return this.session.threads;
  }

  /**
   * Reads the model, checks it is a vggface model and opens an onnxruntime-web session (in a Web Worker by default).
   */
  static async load(options: LoadOptions): Promise<VggFace> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    if (options.model === undefined)
      throw invalidParameterError('model', 'a converted model (URL, File/Blob or bytes)', undefined);
    const runtime = resolveRuntime(options);
    const { bytes, label, owned } = await readModel(options.model, 'model', {
      onProgress: options.onDownloadProgress,
      cache: options.cache ?? false,
    });
    if (bytes.length === 0)
      throw new VggFaceError('E_MODEL', `${label}: empty file (0 bytes), not a model`, { input: label });
    const info = modelInfo(label, readOnnxInterface(bytes, label));
    let session: EngineSession;
    try {
      session = await openEngine(bytes, runtime, owned);
    } catch (err) {
      throw new VggFaceError('E_MODEL', `${label}: onnxruntime-web cannot open it: ${(err as Error).message}`, {
        input: label,
        cause: err,
      });
    }
    return new VggFace(session, label, info, options);
  }

  protected override prepareCrops(
    items: readonly BrowserImageInput[],
    start: number,
    o: NormalizedDescribeOptions,
  ): Promise<PreparedCrop[]> {
    return settleInOrder(items, start, async (input, label) => ({
      label,
      image: await this.session.square(input, label, INPUT_SIZE, o.fit, o.maxPixels),
    }));
  }

  protected override prepareFaces(
    detector: FaceDetector,
    items: readonly BrowserImageInput[],
    start: number,
    detect: ResolvedDetectOptions,
    align: ResolvedAlignOptions,
  ): Promise<PreparedPhoto[]> {
    return settleInOrder(items, start, async (input, label) => ({
      label,
      faces: await extractFaces(detector, input, label, detect, align),
    }));
  }

  protected override isDetector(value: unknown): value is FaceDetector {
    return value instanceof FaceDetector;
  }

  protected override openDetector(): Promise<FaceDetector> {
    const { detectorModel, onDetectorDownloadProgress, backend, threads, wasmPaths, worker, cache } = this.load;
    if (detectorModel === undefined) {
      return Promise.reject(
        invalidParameterError(
          'detectorModel',
          'the YuNet model (a URL, File/Blob or bytes) in VggFace.load, or a detector option',
          undefined,
        ),
      );
    }
    return FaceDetector.open({
      model: detectorModel,
      onDownloadProgress: onDetectorDownloadProgress,
      backend,
      threads,
      wasmPaths,
      worker,
      cache,
    });
  }

  /** The pixels are moved to the worker (this call takes the buffer over). */
  protected override async runSession(
    pixels: Uint8Array,
    count: number,
    outputs: readonly ModelOutput[],
  ): Promise<Record<string, { readonly data: Float32Array }>> {
    try {
      return await this.session.run(
        { [MODEL_INPUT]: { type: 'uint8', data: pixels, dims: [count, INPUT_SIZE, INPUT_SIZE, 3] } },
        outputs,
      );
    } catch (err) {
      throw new VggFaceError('E_MODEL', `${this.modelLabel}: inference failed: ${(err as Error).message}`, {
        input: this.modelLabel,
        cause: err,
      });
    }
  }

  protected override closeSession(): Promise<void> {
    return this.session.close();
  }
}

/** Prepares a batch one input at a time, in order, each failure kept as its error (phrased as Node's). */
async function settleInOrder<P>(
  items: readonly BrowserImageInput[],
  start: number,
  prepare: (input: BrowserImageInput, label: string) => Promise<P>,
): Promise<(P | { label: string; error: VggFaceError })[]> {
  const out: (P | { label: string; error: VggFaceError })[] = [];
  for (const [k, input] of items.entries()) {
    const label = inputLabel(input, start + k);
    try {
      out.push(await prepare(input, label));
    } catch (err) {
      out.push({ label, error: asError(err, label) });
    }
  }
  return out;
}

/**
 * Decodes a photo once, finds its faces and cuts each aligned crop from the original pixels (Node: face/pipeline.ts).
 */
export async function extractFaces(
  detector: FaceDetector,
  input: BrowserImageInput,
  label: string,
  detect: ResolvedDetectOptions,
  align: ResolvedAlignOptions,
): Promise<{ face: DetectedFace; crop: RawImage }[]> {
  return (await detector.extract(input, label, detect, align)) as { face: DetectedFace; crop: RawImage }[];
}
