/**
 * The options of describe and their validation, shared by the Node library (vggface.ts) and the browser build
 * (src/browser): pure, importing nothing Node-specific, so both accept and refuse the same values the same way.
 */
import { invalidParameterError } from './errors.js';
import type { Fit } from './image/decode.js';
import * as check from './validate.js';

export type Layer = 'fc6' | 'fc7' | 'fc8';
export const LAYERS: readonly Layer[] = ['fc6', 'fc7', 'fc8'];

/** image/decode.ts's FITS (which imports sharp); the type below fails to compile if the two lists differ. */
const FIT_NAMES = ['crop', 'pad', 'stretch', 'deepface'] as const satisfies readonly Fit[];
type MissingFit = Exclude<Fit, (typeof FIT_NAMES)[number]>;
const everyFit: [MissingFit] extends [never] ? true : MissingFit = true;
void everyFit;

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
  return {
    layer: options.layer === undefined ? 'fc7' : check.oneOf('layer', options.layer, LAYERS),
    normalize: options.normalize === undefined ? true : check.bool('normalize', options.normalize),
    fit: options.fit === undefined ? defaultFit : check.oneOf('fit', options.fit, FIT_NAMES),
    batchSize: options.batchSize === undefined ? 8 : check.integer('batchSize', options.batchSize, 1, 256),
    maxPixels:
      options.maxPixels === undefined
        ? undefined
        : check.integer('maxPixels', options.maxPixels, 1, Number.MAX_SAFE_INTEGER),
    onProgress: options.onProgress,
  };
}

/** Divides by the L2 norm (a zero vector stays zero). Returns the same array. */
export function l2normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const n = Math.sqrt(s);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return v;
}
