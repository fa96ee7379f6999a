/** A pair list through the model: descriptors, distances, then the LFW protocol (see metrics/protocol.ts). */
import { VggFaceError } from '../errors.js';
import { distance, type Metric } from '../metrics/distance.js';
import { assignFolds, evaluatePairs, type EvaluationReport, type FoldedPair } from '../metrics/protocol.js';
import type { DescribePhotosOptions, VggFace } from '../vggface.js';
import { describeDistinct } from './verify.js';
import { checkPairImages, type PairList } from './pairs.js';

export interface PairDistances {
  readonly list: PairList;
  /** Same order as list.pairs; one array per metric asked for. */
  readonly distances: ReadonlyMap<Metric, Float64Array>;
}

/** Describes every image of a labelled pair list (each once) and measures each pair under each metric. */
export async function measurePairs(model: VggFace, list: PairList, metrics: readonly Metric[], options: DescribePhotosOptions = {}): Promise<PairDistances> {
  const unlabelled = list.pairs.find((p) => p.same === undefined);
  if (unlabelled) throw new VggFaceError('E_FORMAT', `${list.path}: line ${unlabelled.line}: no Decision (Yes/No): evaluation needs labelled pairs`, { input: list.path });
  await checkPairImages(list);
  const described = await describeDistinct(model, list.pairs.flatMap((p) => [p.a, p.b]), options);
  const distances = new Map(metrics.map((m) => [m, new Float64Array(list.pairs.length)]));
  list.pairs.forEach((p, i) => {
    const a = described.get(p.a)!;
    const b = described.get(p.b)!;
    const failed = a.error ?? b.error;
    if (failed) throw new VggFaceError(failed.code, `${list.path}: line ${p.line}: ${failed.message}`, { input: list.path, cause: failed });
    for (const m of metrics) distances.get(m)![i] = distance(a.descriptor!, b.descriptor!, m);
  });
  return { list, distances };
}

/** The protocol's report for one metric; LFW files keep their folds, others are split by {@link assignFolds}. */
export function evaluateMetric(measured: PairDistances, metric: Metric): EvaluationReport {
  const d = measured.distances.get(metric);
  if (!d) throw new VggFaceError('E_INTERNAL', `no distances measured for ${metric}`);
  const scored = measured.list.pairs.map((p, i) => ({ distance: d[i], same: p.same! }));
  const folded: FoldedPair[] = measured.list.format === 'lfw' && measured.list.pairs.every((p) => p.fold !== undefined) && new Set(measured.list.pairs.map((p) => p.fold)).size > 1
    ? scored.map((s, i) => ({ ...s, fold: measured.list.pairs[i].fold! }))
    : assignFolds(scored, 10);
  return evaluatePairs(folded);
}
