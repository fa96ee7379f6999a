/** A pair list through the model: descriptors, distances, then the LFW protocol (see distance/lfw-protocol.ts). */
import { VggFaceError } from '../errors.js';
import { distance, type Metric } from '../distance/distance.js';
import { assignFolds, evaluatePairs, type EvaluationReport, type FoldedPair } from '../distance/lfw-protocol.js';
import type { DescribePhotosOptions, VggFace } from '../vggface.js';
import { describeDistinct } from './verify.js';
import { checkPairImages, type PairList } from './pairs.js';

/** A pair left out of the evaluation: one of its photos has no face. */
export interface SkippedPair {
  readonly line: number;
  /** The photo without a face (the first, when neither has one). */
  readonly image: string;
  readonly reason: string;
}

export interface PairDistances {
  /** The pairs measured: the file's, less the skipped ones (LFW folds kept). */
  readonly list: PairList;
  /** Same order as list.pairs; one array per metric asked for. */
  readonly distances: ReadonlyMap<Metric, Float64Array>;
  /** Pairs left out because a photo has no face, in file order. */
  readonly skipped: readonly SkippedPair[];
}

export interface MeasureOptions extends DescribePhotosOptions {
  /** Stop at the first pair whose photo has no face instead of skipping it (default false). */
  readonly strict?: boolean;
}

/**
 * Describes every image of a labelled pair list (each once) and measures each pair under each metric. A pair whose
 * photo has no face is skipped and listed (as `verify --pairs` skips it): the detector missing a face is a result
 * to report, not a broken input; with `strict` it stops the run. Any other failure (an unreadable photo) stops it.
 */
export async function measurePairs(
  model: VggFace,
  list: PairList,
  metrics: readonly Metric[],
  options: MeasureOptions = {},
): Promise<PairDistances> {
  const unlabelled = list.pairs.find((p) => p.same === undefined);
  if (unlabelled)
    throw new VggFaceError(
      'E_FORMAT',
      `${list.path}: line ${unlabelled.line}: no Decision (Yes/No): evaluation needs labelled pairs`,
      { input: list.path },
    );
  await checkPairImages(list);
  const { strict = false, ...describeOptions } = options;
  const described = await describeDistinct(
    model,
    list.pairs.flatMap((p) => [p.a, p.b]),
    describeOptions,
  );
  const skipped: SkippedPair[] = [];
  const kept = list.pairs.filter((p) => {
    const [a, b] = [described.get(p.a)!, described.get(p.b)!];
    const failed = a.error ?? b.error;
    if (!failed) return true;
    const noFace = a.error ? a.noFace : b.noFace;
    if (strict || !noFace) {
      throw new VggFaceError(
        failed.code,
        `${list.path}: ` +
          `line ${p.line}: ${failed.message}${noFace ? ' (--strict: stopped at the first pair without a face)' : ''}`,
        { input: list.path, cause: failed },
      );
    }
    skipped.push({ line: p.line, image: a.error ? p.a : p.b, reason: failed.message });
    return false;
  });
  if (kept.length === 0) {
    throw new VggFaceError(
      'E_IMAGE',
      `${list.path}: no pair left to evaluate: every pair has a photo without a face ` +
        `(first: line ${skipped[0].line}, ${skipped[0].reason})`,
      { input: list.path },
    );
  }
  const distances = new Map(metrics.map((m) => [m, new Float64Array(kept.length)]));
  kept.forEach((p, i) => {
    const [a, b] = [described.get(p.a)!, described.get(p.b)!];
    for (const m of metrics) distances.get(m)![i] = distance(a.descriptor!, b.descriptor!, m);
  });
  return { list: { ...list, pairs: kept }, distances, skipped };
}

/** The protocol's report for one metric; LFW files keep their folds, others are split by {@link assignFolds}. */
export function evaluateMetric(measured: PairDistances, metric: Metric): EvaluationReport {
  const d = measured.distances.get(metric);
  if (!d) throw new VggFaceError('E_INTERNAL', `no distances measured for ${metric}`);
  const scored = measured.list.pairs.map((p, i) => ({ distance: d[i], same: p.same! }));
  const folded: FoldedPair[] =
    measured.list.format === 'lfw' &&
    measured.list.pairs.every((p) => p.fold !== undefined) &&
    new Set(measured.list.pairs.map((p) => p.fold)).size > 1
      ? scored.map((s, i) => ({ ...s, fold: measured.list.pairs[i].fold! }))
      : assignFolds(scored, 10);
  return evaluatePairs(folded);
}
