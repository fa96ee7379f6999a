/**
 * Verification metrics from distances and same/different labels: the ROC curve, its area, the equal error rate,
 * the true-accept rate at a fixed false-accept rate, and the accuracy of a threshold.
 * A pair is accepted (called "same") when distance <= threshold.
 */
import { invalidParameterError } from '../errors.js';

export interface ScoredPair {
  readonly distance: number;
  /** True when the two images are of the same person. */
  readonly same: boolean;
}

export interface RocPoint {
  /** Accept when distance <= threshold. */
  readonly threshold: number;
  /** False-accept rate: different-person pairs accepted / different-person pairs. */
  readonly far: number;
  /** True-accept rate: same-person pairs accepted / same-person pairs. */
  readonly tar: number;
}

function counts(pairs: readonly ScoredPair[]): { pos: number; neg: number } {
  let pos = 0;
  for (const p of pairs) {
    if (!Number.isFinite(p.distance)) throw invalidParameterError('distance', 'a finite number', p.distance);
    if (p.same) pos++;
  }
  return { pos, neg: pairs.length - pos };
}

function requireBothClasses(pos: number, neg: number): void {
  if (pos === 0 || neg === 0) {
    throw invalidParameterError(
      'pairs',
      'at least one same-person and one different-person pair',
      `${pos} same and ${neg} different`,
    );
  }
}

/**
 * The ROC curve: one point per distinct distance (accepting every pair at or below it), preceded by the point
 * (FAR 0, TAR 0) at a threshold below every distance. Points go from strict to lenient.
 */
export function rocCurve(pairs: readonly ScoredPair[]): RocPoint[] {
  const { pos, neg } = counts(pairs);
  requireBothClasses(pos, neg);
  const sorted = [...pairs].sort((a, b) => a.distance - b.distance);
  const points: RocPoint[] = [
    { threshold: sorted[0].distance - 1e-9 * Math.max(1, Math.abs(sorted[0].distance)), far: 0, tar: 0 },
  ];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < sorted.length; ) {
    const d = sorted[i].distance;
    for (; i < sorted.length && sorted[i].distance === d; i++) {
      if (sorted[i].same) tp++;
      else fp++;
    }
    points.push({ threshold: d, far: fp / neg, tar: tp / pos });
  }
  return points;
}

/**
 * Area under the ROC curve (trapezoids, so tied distances count half): P(distance of a same pair < of a different
 * pair).
 */
export function rocAuc(curve: readonly RocPoint[]): number {
  let area = 0;
  for (let i = 1; i < curve.length; i++)
    area += ((curve[i].far - curve[i - 1].far) * (curve[i].tar + curve[i - 1].tar)) / 2;
  return area;
}

/**
 * Equal error rate: where the false-accept rate equals the false-reject rate (1 - TAR), interpolated linearly
 * along the segment of the ROC curve that crosses FAR = 1 - TAR. Returns the rate and the (interpolated) threshold.
 */
export function equalErrorRate(curve: readonly RocPoint[]): { eer: number; threshold: number } {
  // g = FAR - FRR rises from -1 (strictest) to +1 (most lenient); find where it crosses 0.
  const g = (p: RocPoint) => p.far - (1 - p.tar);
  for (let i = 1; i < curve.length; i++) {
    const a = curve[i - 1];
    const b = curve[i];
    const ga = g(a);
    const gb = g(b);
    if (ga <= 0 && gb >= 0) {
      const t = gb === ga ? 0 : -ga / (gb - ga);
      return { eer: a.far + t * (b.far - a.far), threshold: a.threshold + t * (b.threshold - a.threshold) };
    }
  }
  return { eer: 0, threshold: curve[curve.length - 1].threshold }; // unreachable: g ends at +1
}

/** The highest TAR among thresholds whose FAR does not exceed `far`, with that threshold. */
export function tarAtFar(curve: readonly RocPoint[], far: number): { tar: number; threshold: number } {
  let best = curve[0];
  for (const p of curve) if (p.far <= far && p.tar >= best.tar) best = p;
  return { tar: best.tar, threshold: best.threshold };
}

/** Fraction of pairs a threshold classifies correctly. */
export function accuracyAt(pairs: readonly ScoredPair[], threshold: number): number {
  let ok = 0;
  for (const p of pairs) if (p.distance <= threshold === p.same) ok++;
  return pairs.length === 0 ? 0 : ok / pairs.length;
}

/**
 * The threshold with the best accuracy on `pairs`. Candidates are the midpoints between consecutive distinct
 * distances, plus one below the smallest and one above the largest; ties go to the smallest candidate.
 */
export function bestThreshold(pairs: readonly ScoredPair[]): { threshold: number; accuracy: number } {
  if (pairs.length === 0) throw invalidParameterError('pairs', 'at least one pair', 'none');
  const sorted = [...pairs].sort((a, b) => a.distance - b.distance);
  const { pos } = counts(pairs);
  // Threshold below everything: all rejected, correct = the different pairs.
  let correct = pairs.length - pos;
  let best = { threshold: sorted[0].distance - Math.max(1e-6, Math.abs(sorted[0].distance) * 1e-6), correct };
  for (let i = 0; i < sorted.length; ) {
    const d = sorted[i].distance;
    for (; i < sorted.length && sorted[i].distance === d; i++) correct += sorted[i].same ? 1 : -1;
    const threshold = i < sorted.length ? (d + sorted[i].distance) / 2 : d + Math.max(1e-6, Math.abs(d) * 1e-6);
    if (correct > best.correct) best = { threshold, correct };
  }
  return { threshold: best.threshold, accuracy: best.correct / pairs.length };
}
