/**
 * Fidelity of one model to another on the same images: how close each image's descriptors are (cosine
 * similarity), and how many verification decisions over all pairs of images change at a threshold.
 */
import { invalidParameterError } from '../errors.js';
import { median } from '../util/stats.js';
import { cosineSimilarity, distance, type Metric } from '../distance/distance.js';

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

/** Compares two models' descriptors of the same images (same order). */
export function compareDescriptors(
  labels: readonly string[],
  reference: readonly ArrayLike<number>[],
  candidate: readonly ArrayLike<number>[],
  options: FidelityOptions,
): FidelityReport {
  if (reference.length !== labels.length || candidate.length !== labels.length) {
    throw invalidParameterError(
      'descriptors',
      `${labels.length} per model`,
      `${reference.length} and ${candidate.length}`,
    );
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
      const dr = distance(reference[i], reference[j], options.metric);
      const dc = distance(candidate[i], candidate[j], options.metric);
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
      ...(threshold === undefined
        ? {}
        : { decisions: { threshold, sameReference, sameCandidate, changed: changes.length, changes } }),
    },
  };
}
