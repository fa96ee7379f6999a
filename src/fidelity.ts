/**
 * Fidelity of one model to another on the same images: how close each image's descriptors are (cosine
 * similarity), and how many verification decisions over all pairs of images change at a threshold.
 */
import { invalidParameterError } from './errors.js';

export type Metric = 'cosine' | 'euclidean';
export const METRICS: readonly Metric[] = ['cosine', 'euclidean'];

/** Cosine similarity; 0 when either vector is all zeros. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw invalidParameterError('descriptor', `length ${a.length}`, b.length);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/**
 * Distance between two descriptors: `cosine` = 1 - cosine similarity; `euclidean` = Euclidean distance of the
 * L2-normalised vectors (sqrt(2 - 2 cos), so the two metrics order pairs alike).
 */
export function descriptorDistance(a: ArrayLike<number>, b: ArrayLike<number>, metric: Metric): number {
  const c = cosineSimilarity(a, b);
  return metric === 'cosine' ? 1 - c : Math.sqrt(Math.max(0, 2 - 2 * c));
}

export interface FidelityOptions {
  readonly metric: Metric;
  /** Pairs at or under this distance are judged the same person; without it, decisions are not counted. */
  readonly threshold?: number;
}

export interface PairChange {
  readonly a: string;
  readonly b: string;
  readonly referenceDistance: number;
  readonly candidateDistance: number;
}

export interface FidelityReport {
  /** Cosine similarity of each image's two descriptors, in input order. */
  readonly images: readonly { readonly image: string; readonly cosine: number }[];
  readonly cosine: { readonly min: number; readonly median: number; readonly mean: number };
  readonly pairs: {
    readonly metric: Metric;
    /** All pairs of different images. */
    readonly total: number;
    /** Largest |candidate distance - reference distance| over all pairs. */
    readonly maxDistanceChange: number;
    /** With a threshold: the same-person decisions of both models and the pairs where they differ. */
    readonly decisions?: {
      readonly threshold: number;
      readonly sameReference: number;
      readonly sameCandidate: number;
      readonly changed: number;
      readonly changes: readonly PairChange[];
    };
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Compares two models' descriptors of the same images (same order). */
export function compareDescriptors(
  labels: readonly string[],
  reference: readonly ArrayLike<number>[],
  candidate: readonly ArrayLike<number>[],
  options: FidelityOptions,
): FidelityReport {
  if (reference.length !== labels.length || candidate.length !== labels.length) {
    throw invalidParameterError('descriptors', `${labels.length} per model`, `${reference.length} and ${candidate.length}`);
  }
  const images = labels.map((image, i) => ({ image, cosine: cosineSimilarity(reference[i], candidate[i]) }));
  const cos = images.map((x) => x.cosine);
  const threshold = options.threshold;
  let sameReference = 0;
  let sameCandidate = 0;
  let maxDistanceChange = 0;
  let total = 0;
  const changes: PairChange[] = [];
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) {
      const dr = descriptorDistance(reference[i], reference[j], options.metric);
      const dc = descriptorDistance(candidate[i], candidate[j], options.metric);
      total++;
      maxDistanceChange = Math.max(maxDistanceChange, Math.abs(dc - dr));
      if (threshold === undefined) continue;
      const sr = dr <= threshold;
      const sc = dc <= threshold;
      if (sr) sameReference++;
      if (sc) sameCandidate++;
      if (sr !== sc) changes.push({ a: labels[i], b: labels[j], referenceDistance: dr, candidateDistance: dc });
    }
  }
  return {
    images,
    cosine: {
      min: cos.length ? Math.min(...cos) : NaN,
      median: median(cos),
      mean: cos.length ? cos.reduce((s, x) => s + x, 0) / cos.length : NaN,
    },
    pairs: {
      metric: options.metric,
      total,
      maxDistanceChange,
      ...(threshold === undefined ? {} : { decisions: { threshold, sameReference, sameCandidate, changed: changes.length, changes } }),
    },
  };
}
