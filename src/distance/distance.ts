/**
 * Distances between face descriptors. A pair is the same person when distance <= threshold.
 * Definitions follow deepface (verification.py), so its published thresholds mean the same thing here:
 * - `cosine`: 1 - a.b / (|a| |b|), in [0, 2];
 * - `euclidean`: |a - b| on the vectors as given;
 * - `euclidean_l2`: |a/|a| - b/|b||, i.e. sqrt(2 - 2 cos), in [0, 2];
 * - `angular`: arccos(cos) / pi, in [0, 1].
 * Sums are accumulated in float64.
 */
import { invalidParameterError } from '../errors.js';

export type Metric = 'cosine' | 'euclidean' | 'euclidean_l2' | 'angular';
export const METRICS: readonly Metric[] = ['cosine', 'euclidean', 'euclidean_l2', 'angular'];
export const DEFAULT_METRIC: Metric = 'cosine';

/** The sums every metric is a function of. */
export interface PairSums {
  readonly dot: number;
  /** Squared norms. */
  readonly aa: number;
  readonly bb: number;
}

export function pairSums(a: ArrayLike<number>, b: ArrayLike<number>): PairSums {
  if (a.length !== b.length)
    throw invalidParameterError('descriptors', `two vectors of the same length`, `lengths ${a.length} and ${b.length}`);
  let dot = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    dot += x * y;
    aa += x * x;
    bb += y * y;
  }
  return { dot, aa, bb };
}

/**
 * Cosine similarity from the sums; 0 when either vector is all zeros (no direction: as far from everything as
 * orthogonal).
 */
function cosineOfSums(s: PairSums): number {
  const d = Math.sqrt(s.aa) * Math.sqrt(s.bb);
  if (d === 0) return 0;
  return Math.min(1, Math.max(-1, s.dot / d));
}

/** A metric from the sums: lets a matrix product (dot products) and stored norms give any distance. */
export function distanceFromSums(s: PairSums, metric: Metric): number {
  switch (metric) {
    case 'cosine':
      return 1 - cosineOfSums(s);
    case 'euclidean':
      return Math.sqrt(Math.max(0, s.aa + s.bb - 2 * s.dot));
    case 'euclidean_l2':
      return Math.sqrt(Math.max(0, 2 - 2 * cosineOfSums(s)));
    case 'angular':
      return Math.acos(cosineOfSums(s)) / Math.PI;
  }
}

/** Cosine similarity of two descriptors, in [-1, 1]; 0 when either is all zeros. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return cosineOfSums(pairSums(a, b));
}

/** The distance between two descriptors under `metric`. */
export function distance(a: ArrayLike<number>, b: ArrayLike<number>, metric: Metric = DEFAULT_METRIC): number {
  if (metric === 'euclidean') {
    // Direct difference: exact for near-identical vectors, where aa + bb - 2 dot would cancel.
    if (a.length !== b.length)
      throw invalidParameterError(
        'descriptors',
        `two vectors of the same length`,
        `lengths ${a.length} and ${b.length}`,
      );
    let s = 0;
    for (let i = 0; i < a.length; i++) {
      const d = a[i] - b[i];
      s += d * d;
    }
    return Math.sqrt(s);
  }
  return distanceFromSums(pairSums(a, b), metric);
}
