/** Messages between the server's main thread and its inference workers. */
import type { ApiErrorData } from './api-error.js';
import type { AlignMode } from '../face/align.js';
import type { DetectedFace } from '../face/types.js';
import type { Fit } from '../image/decode.js';
import type { ModelInfo } from '../model/cache.js';
import type { ModelIdentity } from '../model/identity.js';
import type { Layer, LoadOptions } from '../vggface.js';

/**
 * `all`: every face of each photo; `largest`: the largest face (an error when there is none); `none`: the image as
 * given, a face crop.
 */
export type FaceMode = 'all' | 'largest' | 'none';

export interface DetectionSettings {
  readonly align?: AlignMode;
  readonly margin?: number;
  readonly minScore?: number;
  readonly minFaceSize?: number;
  readonly maxFaces?: number;
}

/** What to do with the images of one request. */
export interface JobSpec {
  readonly faces: FaceMode;
  /** Only with faces `none`. */
  readonly fit?: Fit;
  readonly detection: DetectionSettings;
  readonly layer: Layer;
  readonly normalize: boolean;
  /** `json`: each image's result as JSON text (describe); `vectors`: descriptors as Float32Arrays. */
  readonly output: 'json' | 'vectors';
  /** Also return each image's sha256 (gallery adds). */
  readonly hash: boolean;
}

export interface JobImage {
  /** The encoded image, or its base64 text (decoded in the worker, off the event loop). */
  readonly data: Uint8Array | string;
  /** The client's name for it (file name), for messages and results. */
  readonly name?: string;
}

/** One image's outcome with output `vectors`: its largest face (none for crops) and descriptor. */
export interface VectorResult {
  readonly width?: number;
  readonly height?: number;
  readonly face?: DetectedFace;
  readonly descriptor: Float32Array;
  readonly sha256?: string;
}

/** One image's outcome with output `json`: the JSON text of `{"name", "width", "height", "faces": [...]}`. */
export interface JsonResult {
  readonly json: string;
  readonly faces: number;
}

export type ImageResult = VectorResult | JsonResult;

export interface WorkerSetup {
  readonly load: LoadOptions;
  readonly detectorModel?: string;
  readonly threads: number;
  readonly batchSize: number;
  readonly maxPixels: number;
  /** The time limit of decoding one image (the request's own limit: past it, nobody waits for the result). */
  readonly decodeTimeoutSeconds: number;
}

export type ToWorker =
  | { readonly type: 'job'; readonly id: number; readonly spec: JobSpec; readonly images: readonly JobImage[] }
  | { readonly type: 'cancel'; readonly id: number }
  | { readonly type: 'close' };

export type FromWorker =
  /** Loaded; `secondsPerImage`: one photo timed at start (decode, detection, one face described). */
  | {
      readonly type: 'ready';
      readonly modelPath: string;
      readonly info: ModelInfo;
      readonly identity: ModelIdentity;
      readonly secondsPerImage: number;
    }
  /** The answer; nothing runs for the job any more. */
  | { readonly type: 'done'; readonly id: number; readonly results: readonly ImageResult[] }
  /** The request's error; work already running for it may go on until `released`. */
  | { readonly type: 'failed'; readonly id: number; readonly error: ApiErrorData }
  /** After `failed` or a cancel: the last of the job's running work has returned. */
  | { readonly type: 'released'; readonly id: number }
  /** One inference call: how many faces, how long. */
  | { readonly type: 'batch'; readonly size: number; readonly seconds: number }
  /** The worker could not start (the message is the load error's). */
  | { readonly type: 'fatal'; readonly code?: string; readonly message: string }
  | { readonly type: 'closed' };
