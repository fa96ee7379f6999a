/**
 * The LFW evaluation protocol (Huang et al. 2007, "View 2"): the pairs are split into 10 folds; for each fold the
 * threshold is chosen on the other 9 and the accuracy measured on it; the reported accuracy is the mean over folds.
 * ROC AUC, EER and TAR@FAR are computed over all pairs, as LFW results usually are.
 */
import { invalidParameterError } from '../errors.js';
import {
  accuracyAt,
  bestThreshold,
  equalErrorRate,
  rocAuc,
  rocCurve,
  tarAtFar,
  type RocPoint,
  type ScoredPair,
} from './roc.js';

export interface FoldedPair extends ScoredPair {
  /** 0-based fold; pairs without one are assigned by {@link assignFolds}. */
  readonly fold: number;
}

export interface FoldResult {
  readonly fold: number;
  readonly pairs: number;
  /** Chosen on the other folds. */
  readonly threshold: number;
  readonly accuracy: number;
}

export interface EvaluationReport {
  readonly pairs: number;
  readonly samePairs: number;
  readonly differentPairs: number;
  readonly folds: readonly FoldResult[];
  /** Mean of the per-fold accuracies. */
  readonly accuracy: number;
  /** Standard deviation of the per-fold accuracies (population, as LFW reports). */
  readonly accuracyStd: number;
  readonly auc: number;
  readonly eer: number;
  readonly eerThreshold: number;
  /** TAR at FAR <= 1e-2 and <= 1e-3, with the threshold that gives it. */
  readonly tarAtFar: readonly { far: number; tar: number; threshold: number }[];
  /** The most accurate threshold over all pairs: what `calibrate` stores. */
  readonly bestThreshold: number;
  readonly bestThresholdAccuracy: number;
  readonly roc: readonly RocPoint[];
}

export const FARS = [1e-2, 1e-3] as const;

/**
 * Stratified assignment to `k` folds: the n-th same-person pair goes to fold n mod k, and so does the n-th
 * different-person pair, so every fold keeps the file's balance. Order is the file's order.
 */
export function assignFolds(pairs: readonly ScoredPair[], k = 10): FoldedPair[] {
  let s = 0;
  let d = 0;
  return pairs.map((p) => ({ ...p, fold: p.same ? s++ % k : d++ % k }));
}

/** Runs the protocol. Every fold needs pairs; every training set needs both classes. */
export function evaluatePairs(
  pairs: readonly FoldedPair[],
  options: { fars?: readonly number[] } = {},
): EvaluationReport {
  const foldIds = [...new Set(pairs.map((p) => p.fold))].sort((a, b) => a - b);
  if (foldIds.length < 2) throw invalidParameterError('pairs', 'pairs in at least 2 folds', `${foldIds.length} fold`);
  const folds: FoldResult[] = foldIds.map((fold) => {
    const test = pairs.filter((p) => p.fold === fold);
    const train = pairs.filter((p) => p.fold !== fold);
    const { threshold } = bestThreshold(train);
    return { fold, pairs: test.length, threshold, accuracy: accuracyAt(test, threshold) };
  });
  const accuracy = folds.reduce((s, f) => s + f.accuracy, 0) / folds.length;
  const accuracyStd = Math.sqrt(folds.reduce((s, f) => s + (f.accuracy - accuracy) ** 2, 0) / folds.length);
  const roc = rocCurve(pairs);
  const { eer, threshold: eerThreshold } = equalErrorRate(roc);
  const best = bestThreshold(pairs);
  const samePairs = pairs.filter((p) => p.same).length;
  return {
    pairs: pairs.length,
    samePairs,
    differentPairs: pairs.length - samePairs,
    folds,
    accuracy,
    accuracyStd,
    auc: rocAuc(roc),
    eer,
    eerThreshold,
    tarAtFar: (options.fars ?? FARS).map((far) => ({ far, ...tarAtFar(roc, far) })),
    bestThreshold: best.threshold,
    bestThresholdAccuracy: best.accuracy,
    roc,
  };
}
