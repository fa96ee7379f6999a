/**
 * YuNet face detection in the browser, the same steps as Node's FaceDetector (face/detection.ts: letterbox,
 * decoding, NMS, filtering, order), with onnxruntime-web instead of onnxruntime-node and resize.ts instead of
 * sharp for the detector's smaller copy of a large photo; all of it beside the session, in its Web Worker.
 */
import { MAX_THREADS } from '../options.js';
import { VggFaceError, invalidParameterError } from '../errors.js';
import type { ResolvedAlignOptions } from '../face/align-transform.js';
import { resolveDetectOptions, type DetectOptions, type ResolvedDetectOptions } from '../face/detection.js';
import type { DetectedFace } from '../face/types.js';
import { YUNET_INPUT, YUNET_OUTPUTS } from '../face/yunet.js';
import type { RawImage } from '../image/types.js';
import type { DownloadProgress } from '../util/download.js';
import * as check from '../validate.js';
import { openEngine, type EngineSession } from './engine.js';
import { inputLabel, type BrowserImageInput } from './image.js';
import { looksLikeOnnx } from './model-info.js';
import { readModel, type ModelSource } from './model.js';
import type { FoundFace } from './pixels.js';
import { BACKENDS, type Backend } from './session.js';

export const YUNET_FILE = 'face_detection_yunet_2023mar.onnx';

/** How onnxruntime-web runs a model; shared by VggFace.load and FaceDetector.open. */
export interface RuntimeLoadOptions {
  /** `auto` (default): WebGPU when the browser has an adapter, else WebAssembly; or `wasm`, `webgpu`. */
  readonly backend?: Backend;
  /** WebAssembly threads; default onnxruntime-web's (up to 4 when the page is cross-origin isolated, else 1). */
  readonly threads?: number;
  /** URL prefix of onnxruntime-web's files (ort.*.min.mjs, ort-wasm-*.wasm/.mjs); default: beside vggface.js. */
  readonly wasmPaths?: string;
  /** Run ONNX Runtime in a Web Worker (default true), so inference never holds the page. */
  readonly worker?: boolean;
  /** Cache Storage name that keeps models fetched from URLs (default false: the HTTP cache only). */
  readonly cache?: string | false;
}

export interface FaceDetectorOptions extends RuntimeLoadOptions {
  /** The YuNet ONNX model: a URL (e.g. `vggface serve --models DIR` serves one), a File/Blob or the bytes. */
  readonly model: ModelSource;
  readonly onDownloadProgress?: (p: DownloadProgress) => void;
}

/** Validates the runtime options, as Node validates its own. */
export function resolveRuntime(o: RuntimeLoadOptions): {
  backend: Backend;
  threads?: number;
  wasmPaths?: string;
  worker: boolean;
} {
  return {
    backend: o.backend === undefined ? 'auto' : check.oneOf('backend', o.backend, BACKENDS),
    threads: o.threads === undefined ? undefined : check.integer('threads', o.threads, 1, MAX_THREADS),
    wasmPaths: o.wasmPaths === undefined ? undefined : check.nonEmptyString('wasmPaths', o.wasmPaths),
    worker: o.worker === undefined ? true : check.bool('worker', o.worker),
  };
}

export class FaceDetector {
  private closed = false;

  private constructor(
    private readonly session: EngineSession,
    /** Names the model in messages (its URL or file name). */
    readonly modelLabel: string,
  ) {}

  /** What runs YuNet: `webgpu`, or `wasm`. */
  get backend(): EngineSession['backend'] {
    return this.session.backend;
  }

  static async open(options: FaceDetectorOptions): Promise<FaceDetector> {
    if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
    if (options.model === undefined) {
      throw invalidParameterError('model', `the YuNet model (${YUNET_FILE}) as a URL, a File/Blob or bytes`, undefined);
    }
    const runtime = resolveRuntime(options);
    const { bytes, label, owned } = await readModel(options.model, 'detector model', {
      onProgress: options.onDownloadProgress,
      cache: options.cache ?? false,
    });
    if (!looksLikeOnnx(bytes))
      throw new VggFaceError(
        'E_MODEL',
        `${label}: not an ONNX model, expected the YuNet face detector (${YUNET_FILE})`,
        { input: label },
      );
    let session: EngineSession;
    try {
      session = await openEngine(bytes, { ...runtime, backend: runtime.backend }, owned);
    } catch (err) {
      throw new VggFaceError('E_MODEL', `${label}: onnxruntime-web cannot open it: ${(err as Error).message}`, {
        input: label,
        cause: err,
      });
    }
    const missing = YUNET_OUTPUTS.filter((o) => !session.outputNames.includes(o));
    if (!session.inputNames.includes(YUNET_INPUT) || missing.length > 0) {
      await session.close();
      throw new VggFaceError(
        'E_MODEL',
        `${label}: not a YuNet face detector: expected input ` +
          `"${YUNET_INPUT}" and outputs ${YUNET_OUTPUTS.join(', ')}; ` +
          `it has inputs ${session.inputNames.join(', ') || 'none'} and ` +
          `outputs ${session.outputNames.join(', ') || 'none'}`,
        { input: label },
      );
    }
    return new FaceDetector(session, label);
  }

  /** Decodes a photo (EXIF orientation applied) and finds its faces, largest first. */
  async detect(input: BrowserImageInput, options: DetectOptions = {}): Promise<DetectedFace[]> {
    return (await this.extract(input, inputLabel(input, 0), resolveDetectOptions(options), null)).map((f) => f.face);
  }

  /** Finds the faces of an already decoded RGB image, largest first, in its pixel coordinates. */
  async detectDecoded(image: RawImage, options: ResolvedDetectOptions): Promise<DetectedFace[]> {
    return (await this.extract(image, 'image', options, null)).map((f) => f.face);
  }

  /** Decodes a photo once, finds its faces and, given `align`, cuts each aligned crop from the original pixels. */
  extract(
    input: BrowserImageInput,
    label: string,
    detect: ResolvedDetectOptions,
    align: ResolvedAlignOptions | null,
  ): Promise<FoundFace[]> {
    if (this.closed) return Promise.reject(new VggFaceError('E_USAGE', 'this FaceDetector was closed'));
    return this.session.faces(input, label, detect, align);
  }

  /** Releases the onnxruntime-web session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.close();
  }
}
