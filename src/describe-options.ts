/**
 * The options of describe and their validation (from their definitions in options.ts), shared by the Node library
 * (vggface.ts) and the browser build (src/browser): pure, importing nothing Node-specific, so both accept and refuse
 * the same values the same way.
 */
import { invalidParameterError } from './errors.js';
import type { Fit } from './image/decode.js';
import { DESCRIBE_OPTIONS, optionalOption, resolveOption, type AlignMode, type Layer } from './options.js';
import * as check from './validate.js';

export { LAYERS, type Layer } from './options.js';

export interface DescribeOptions {
  /** Which layer to return; default fc7 (the VGG-Face descriptor). */
  readonly layer?: Layer;
  /** L2-normalise the vector (default true). */
  readonly normalize?: boolean;
  /**
   * How non-square images become 224x224: default `deepface` for a model with deepface preprocessing (its resize
   * and zero padding), else `crop`. Images already 224x224 are used untouched.
   */
  readonly fit?: Fit;
  /** Images per inference call; default 8. */
  readonly batchSize?: number;
  /** Refuse images with more pixels than this (default 100 MP). */
  readonly maxPixels?: number;
  /** Called after each batch with the number of images done. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface NormalizedDescribeOptions {
  layer: Layer;
  normalize: boolean;
  fit: Fit;
  batchSize: number;
  maxPixels: number | undefined;
  onProgress: DescribeOptions['onProgress'];
}

export function normalizeDescribeOptions(options: DescribeOptions, defaultFit: Fit): NormalizedDescribeOptions {
  if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
  const o = DESCRIBE_OPTIONS;
  return {
    layer: resolveOption(o.layer, options.layer),
    normalize: resolveOption(o.normalize, options.normalize),
    // The default fit depends on the model's preprocessing.
    fit: resolveOption(o.fit, options.fit) ?? defaultFit,
    batchSize: resolveOption(o.batchSize, options.batchSize),
    // Left undefined when not given: decoding applies the same default (DEFAULT_MAX_PIXELS).
    maxPixels: optionalOption(o.maxPixels, options.maxPixels),
    onProgress: options.onProgress,
  };
}

/** The face settings that commands and queued runs carry, as describeFaces takes them (undefined: its default). */
export interface FaceSettings {
  readonly align?: AlignMode;
  readonly margin?: number;
  readonly maxFaces?: number;
  readonly minFaceSize?: number;
  readonly minScore?: number;
}

/** Only the face settings of wider ones (parsed flags, a run's settings): nothing else may reach describeFaces. */
export function faceSettings(s: FaceSettings): FaceSettings {
  const { align, margin, maxFaces, minFaceSize, minScore } = s;
  return { align, margin, maxFaces, minFaceSize, minScore };
}

/** Divides by the L2 norm (a zero vector stays zero). Returns the same array. */
export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return v;
}
