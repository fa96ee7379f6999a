/**
 * VGG-Face in the browser: the Node library's VggFace (src/vggface.ts) with the same method names, options,
 * results and errors, on onnxruntime-web. The model is a converted `.onnx` (vggface convert), given as a URL, a
 * File/Blob or bytes; photos never leave the page.
 *
 * ```js
 * import { VggFace, distance } from 'vggface/browser';
 * const model = await VggFace.load({ model: '/models/vgg_face_int8.onnx', detectorModel: '/models/face_detection_yunet_2023mar.onnx' });
 * const [a, b] = await model.describe([fileA, fileB]);                 // face crops, as given
 * for await (const photo of model.describeFaces([file])) console.log(photo.faces);   // whole photos
 * console.log(distance(a, b));
 * ```
 */
import { l2normalize, normalizeDescribeOptions, type DescribeOptions, type Layer } from '../describe-options.js';
import { VggFaceError, invalidParameterError } from '../errors.js';
import { resolveAlignOptions, type AlignOptions, type ResolvedAlignOptions } from '../face/align-transform.js';
import { resolveDetectOptions, type DetectOptions, type ResolvedDetectOptions } from '../face/detection.js';
import type { DetectedFace } from '../face/types.js';
import type { RawImage } from '../image/decode.js';
import type { ModelInfo } from '../runtime/model-cache.js';
import type { DownloadProgress } from '../util/download.js';
import * as check from '../validate.js';
import type { DescribeFacesResult, DescribePhotoResult, DescribeResult, FaceDescription } from '../vggface.js';
import { FaceDetector, resolveRuntime, type RuntimeLoadOptions } from './detector.js';
import { openEngine } from './engine.js';
import { inputLabel, type BrowserImageInput } from './image.js';
import { MODEL_INPUT, modelInfo, readOnnxInterface, type ModelOutput } from './model-info.js';
import { readModel, type ModelSource } from './model.js';
import type { EngineSession } from './engine.js';

export type { DescribeFacesResult, DescribePhotoResult, DescribeResult, FaceDescription };

const INPUT_SIZE = 224;

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

type Decoded = { label: string; image?: RawImage; error?: VggFaceError };

const asError = (err: unknown, label: string): VggFaceError =>
  err instanceof VggFaceError
    ? err
    : new VggFaceError('E_IMAGE', `${label}: ${(err as Error)?.message ?? String(err)}`, { input: label, cause: err });

export class VggFace {
  private closed = false;
  private ownDetector: Promise<FaceDetector> | undefined;

  private constructor(
    private readonly session: EngineSession,
    /** Names the model in messages: its URL or file name. */
    readonly modelLabel: string,
    /** Preprocessing, precision and widths of the loaded model (from its metadata), as Node's `info`. */
    readonly info: ModelInfo,
    private readonly load: LoadOptions,
  ) {}

  /** What runs the model: `webgpu`, or `wasm` (with {@link threads} threads). */
  get backend(): EngineSession['backend'] {
    return this.session.backend;
  }

  get threads(): number {
    return this.session.threads;
  }

  /** Reads the model, checks it is a vggface model and opens an onnxruntime-web session (in a Web Worker by default). */
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

  /** Length of the vectors `describe` returns for `layer`. */
  dimension(layer: Layer = 'fc7'): number {
    return this.info.topology[layer];
  }

  /** Describes one image. */
  describe(input: BrowserImageInput, options?: DescribeOptions): Promise<Float32Array>;
  /** Describes many images, batched; resolves in input order. Rejects on the first input that fails. */
  describe(inputs: readonly BrowserImageInput[], options?: DescribeOptions): Promise<Float32Array[]>;
  async describe(
    inputs: BrowserImageInput | readonly BrowserImageInput[],
    options: DescribeOptions = {},
  ): Promise<Float32Array | Float32Array[]> {
    const list = Array.isArray(inputs) ? (inputs as readonly BrowserImageInput[]) : [inputs as BrowserImageInput];
    const out: Float32Array[] = [];
    for await (const r of this.describeEach(list, options)) {
      if (r.error) throw r.error;
      out.push(r.descriptor);
    }
    return Array.isArray(inputs) ? out : out[0];
  }

  /** Describes images (face crops, brought to 224x224 by `fit`) as a stream of results in input order. */
  async *describeEach(
    inputs: Iterable<BrowserImageInput>,
    options: DescribeOptions = {},
  ): AsyncGenerator<DescribeResult> {
    this.assertOpen();
    const o = normalizeDescribeOptions(options, this.info.preprocessing === 'deepface' ? 'deepface' : 'crop');
    const list = [...inputs];
    for (let start = 0; start < list.length; start += o.batchSize) {
      const decoded: Decoded[] = [];
      for (let k = start; k < Math.min(list.length, start + o.batchSize); k++) {
        const label = inputLabel(list[k], k);
        try {
          decoded.push({ label, image: await this.session.square(list[k], label, INPUT_SIZE, o.fit, o.maxPixels) });
        } catch (err) {
          decoded.push({ label, error: asError(err, label) });
        }
      }
      const vectors = await this.runDecoded(decoded, o.layer, o.normalize);
      for (let k = 0; k < decoded.length; k++) {
        const d = decoded[k];
        yield d.error
          ? { index: start + k, label: d.label, error: d.error }
          : { index: start + k, label: d.label, descriptor: vectors.get(k)! };
      }
      o.onProgress?.(start + decoded.length, list.length);
    }
  }

  /**
   * Every face in whole photos: decoded once, found by YuNet, aligned upright from the original pixels and
   * described. One result per photo, in input order, as Node's describeFaces.
   */
  async *describeFaces(
    inputs: Iterable<BrowserImageInput>,
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
    const o = normalizeDescribeOptions(describeOptions, 'crop');
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
    for (let start = 0; start < list.length; start += o.batchSize) {
      const photos: { label: string; faces?: { face: DetectedFace; crop: RawImage }[]; error?: VggFaceError }[] = [];
      for (let k = start; k < Math.min(list.length, start + o.batchSize); k++) {
        const label = inputLabel(list[k], k);
        try {
          photos.push({
            label,
            faces: (await detector.extract(list[k], label, detect, alignment)) as {
              face: DetectedFace;
              crop: RawImage;
            }[],
          });
        } catch (err) {
          photos.push({ label, error: asError(err, label) });
        }
      }
      const crops = photos.flatMap((p) => p.faces?.map((f) => f.crop) ?? []);
      const vectors: Float32Array[] = [];
      for (let i = 0; i < crops.length; i += o.batchSize) {
        const batch = crops.slice(i, i + o.batchSize).map((image, k) => ({ label: `face #${i + k + 1}`, image }));
        const got = await this.runDecoded(batch, o.layer, o.normalize);
        batch.forEach((_, k) => vectors.push(got.get(k)!));
      }
      let v = 0;
      for (let k = 0; k < photos.length; k++) {
        const p = photos[k];
        if (p.error) yield { index: start + k, label: p.label, error: p.error };
        else
          yield {
            index: start + k,
            label: p.label,
            faces: p.faces!.map((f): FaceDescription => ({ face: f.face, descriptor: vectors[v++] })),
          };
      }
      o.onProgress?.(start + photos.length, list.length);
    }
  }

  /** One descriptor per photo: the largest face of each (an error when there is none), or with `faces: 'none'` the image as given. */
  async *describePhotos(
    inputs: Iterable<BrowserImageInput>,
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

  /**
   * Runs the network on `count` images of 224x224 RGB packed in `pixels` (count*224*224*3 bytes, which this call
   * takes over: the buffer is moved to the worker) and returns the outputs, each a [count, width] row-major array.
   */
  async run(pixels: Uint8Array, count: number, outputs: readonly ModelOutput[]): Promise<Record<string, Float32Array>> {
    this.assertOpen();
    const per = INPUT_SIZE * INPUT_SIZE * 3;
    if (pixels.length !== count * per)
      throw invalidParameterError('pixels', `${count * per} bytes (${count} x 224x224x3)`, pixels);
    let res;
    try {
      res = await this.session.run(
        { [MODEL_INPUT]: { type: 'uint8', data: pixels, dims: [count, INPUT_SIZE, INPUT_SIZE, 3] } },
        outputs,
      );
    } catch (err) {
      throw new VggFaceError('E_MODEL', `${this.modelLabel}: inference failed: ${(err as Error).message}`, {
        input: this.modelLabel,
        cause: err,
      });
    }
    const out: Record<string, Float32Array> = {};
    for (const name of outputs) out[name] = res[name].data;
    return out;
  }

  private async runDecoded(decoded: Decoded[], layer: Layer, normalize: boolean): Promise<Map<number, Float32Array>> {
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

  private detector(): Promise<FaceDetector> {
    if (!this.ownDetector) {
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
      const opening = FaceDetector.open({
        model: detectorModel,
        onDownloadProgress: onDetectorDownloadProgress,
        backend,
        threads,
        wasmPaths,
        worker,
        cache,
      });
      this.ownDetector = opening;
      opening.catch(() => {
        if (this.ownDetector === opening) this.ownDetector = undefined;
      });
    }
    return this.ownDetector;
  }

  /** Releases the session (and the detector it opened). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const detector = this.ownDetector;
    this.ownDetector = undefined;
    await this.session.close();
    if (detector) await (await detector.catch(() => undefined))?.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new VggFaceError('E_USAGE', 'this VggFace model was closed');
  }
}

/** Decodes a photo once, finds its faces and cuts each aligned crop from the original pixels (Node: face/pipeline.ts). */
export async function extractFaces(
  detector: FaceDetector,
  input: BrowserImageInput,
  label: string,
  detect: ResolvedDetectOptions,
  align: ResolvedAlignOptions,
): Promise<{ face: DetectedFace; crop: RawImage }[]> {
  return (await detector.extract(input, label, detect, align)) as { face: DetectedFace; crop: RawImage }[];
}
