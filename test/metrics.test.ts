/**
 * Distances against hand-computed values; ROC, AUC, EER, TAR@FAR and the 10-fold protocol against independent
 * computations.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { distance, distanceFromSums, METRICS, pairSums } from '../src/distance/distance.js';
import { assignFolds, evaluatePairs } from '../src/distance/lfw-protocol.js';
import {
  accuracyAt,
  bestThreshold,
  equalErrorRate,
  rocAuc,
  rocCurve,
  tarAtFar,
  type ScoredPair,
} from '../src/distance/roc.js';
import { xorshift32 } from '../src/util/random.js';

const close = (a: number, b: number, tol = 1e-12, what = '') =>
  assert.ok(Math.abs(a - b) <= tol, `${what} ${a} != ${b} (tol ${tol})`);

test('distances: hand-computed values', () => {
  // a = (1, 0), b = (1, 1): cos = 1/sqrt2
  const a = [1, 0];
  const b = [1, 1];
  close(distance(a, b, 'cosine'), 1 - Math.SQRT1_2, 1e-15, 'cosine');
  close(distance(a, b, 'euclidean'), 1, 1e-15, 'euclidean');
  // unit vectors (1,0) and (0.7071, 0.7071): |diff| = sqrt((1-0.7071)^2 + 0.7071^2) = sqrt(2 - sqrt2)
  close(distance(a, b, 'euclidean_l2'), Math.sqrt(2 - Math.SQRT2), 1e-15, 'euclidean_l2');
  close(distance(a, b, 'angular'), 0.25, 1e-15, 'angular'); // 45 degrees / 180
  // (3, 4) and (6, 8): same direction, |diff| = 5
  close(distance([3, 4], [6, 8], 'cosine'), 0, 1e-15);
  close(distance([3, 4], [6, 8], 'euclidean'), 5, 1e-15);
  close(distance([3, 4], [6, 8], 'euclidean_l2'), 0, 1e-7);
  close(distance([3, 4], [6, 8], 'angular'), 0, 1e-7);
  // opposite vectors
  close(distance([1, 2], [-1, -2], 'cosine'), 2, 1e-15);
  close(distance([1, 2], [-1, -2], 'euclidean_l2'), 2, 1e-15);
  close(distance([1, 2], [-1, -2], 'angular'), 1, 1e-8); // acos is steep at -1: one ulp in the cosine is 5e-9 here
  // orthogonal: cosine 1, angular 1/2, euclidean_l2 sqrt2
  close(distance([0, 2], [5, 0], 'cosine'), 1, 1e-15);
  close(distance([0, 2], [5, 0], 'angular'), 0.5, 1e-15);
  close(distance([0, 2], [5, 0], 'euclidean_l2'), Math.SQRT2, 1e-15);
  close(distance([0, 2], [5, 0], 'euclidean'), Math.sqrt(29), 1e-15);
  // a zero vector has no direction: as far as orthogonal, never NaN
  close(distance([0, 0], [1, 0], 'cosine'), 1, 0);
  assert.throws(() => distance([1, 2], [1, 2, 3]), /same length/);
});

test('distances from sums equal the direct ones for every metric', () => {
  const a = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: 64 }, (_, i) => Math.cos(i * 0.7));
  for (const m of METRICS) close(distanceFromSums(pairSums(a, b), m), distance(a, b, m), 1e-12, m);
});

test('ROC, AUC, EER and TAR@FAR on a hand-checked example', () => {
  // same: 0.1, 0.2, 0.4; different: 0.3, 0.5, 0.6
  const pairs: ScoredPair[] = [0.1, 0.2, 0.4]
    .map((d) => ({ distance: d, same: true }))
    .concat([0.3, 0.5, 0.6].map((d) => ({ distance: d, same: false })));
  const roc = rocCurve(pairs);
  assert.deepEqual(
    roc.slice(1).map((p) => [p.threshold, p.far, p.tar]),
    [
      [0.1, 0, 1 / 3],
      [0.2, 0, 2 / 3],
      [0.3, 1 / 3, 2 / 3],
      [0.4, 1 / 3, 1],
      [0.5, 2 / 3, 1],
      [0.6, 1, 1],
    ],
  );
  // 8 of the 9 (same, different) orderings are right.
  close(rocAuc(roc), 8 / 9, 1e-15, 'auc');
  // FAR - FRR: at 0.3 it is 1/3 - 1/3 = 0: the EER is 1/3 there.
  const eer = equalErrorRate(roc);
  close(eer.eer, 1 / 3, 1e-15, 'eer');
  assert.equal(tarAtFar(roc, 0).tar, 2 / 3);
  assert.equal(tarAtFar(roc, 0.5).tar, 1);
  const best = bestThreshold(pairs);
  close(best.threshold, 0.25, 1e-15, 'best threshold'); // midpoint of 0.2 and 0.3, first of the tied best (5/6)
  close(best.accuracy, 5 / 6, 1e-15);
  close(accuracyAt(pairs, 0.45), 5 / 6, 1e-15);
});

/** xorshift + Box-Muller: deterministic normal samples. */
function normals(seed: number): () => number {
  const next = xorshift32(seed);
  const u = () => next() + 0.5 / 4294967296; // never 0: log(0) is -Infinity
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** Independent, brute-force versions: O(n^2) AUC by counting orderings; EER by scanning every threshold. */
function naiveAuc(pairs: ScoredPair[]): number {
  const pos = pairs.filter((p) => p.same).map((p) => p.distance);
  const neg = pairs.filter((p) => !p.same).map((p) => p.distance);
  let s = 0;
  for (const p of pos) for (const n of neg) s += p < n ? 1 : p === n ? 0.5 : 0;
  return s / (pos.length * neg.length);
}

function naiveFoldAccuracy(pairs: { distance: number; same: boolean; fold: number }[]): number {
  const folds = [...new Set(pairs.map((p) => p.fold))];
  const acc = (set: typeof pairs, t: number) => set.filter((p) => p.distance <= t === p.same).length / set.length;
  let total = 0;
  for (const f of folds) {
    const train = pairs.filter((p) => p.fold !== f);
    const ds = [...new Set(train.map((p) => p.distance))].sort((a, b) => a - b);
    const candidates = [ds[0] - 1, ...ds.slice(0, -1).map((d, i) => (d + ds[i + 1]) / 2), ds[ds.length - 1] + 1];
    let best = candidates[0];
    for (const t of candidates) if (acc(train, t) > acc(train, best)) best = t;
    total += acc(
      pairs.filter((p) => p.fold === f),
      best,
    );
  }
  return total / folds.length;
}

test('10-fold protocol on perfectly separable descriptors: accuracy 1, EER 0, AUC 1', () => {
  const pairs: ScoredPair[] = [];
  for (let i = 0; i < 300; i++)
    pairs.push({ distance: 0.1 + (i % 30) / 100, same: true }, { distance: 0.6 + (i % 30) / 100, same: false });
  const r = evaluatePairs(assignFolds(pairs));
  assert.equal(r.folds.length, 10);
  assert.equal(r.accuracy, 1);
  assert.equal(r.auc, 1);
  assert.equal(r.eer, 0);
  assert.deepEqual(
    r.tarAtFar.map((t) => t.tar),
    [1, 1],
  );
  assert.ok(r.bestThreshold > 0.39 && r.bestThreshold < 0.6, `best threshold ${r.bestThreshold}`);
});

test('10-fold protocol on overlapping Gaussian distances matches independent computation and theory', () => {
  // same ~ N(0.3, 0.1), different ~ N(0.7, 0.1): d' = 4, so AUC = Phi(4 / sqrt2) = 0.99766, EER = Phi(-2) = 0.02275,
  // best accuracy = 1 - Phi(-2) = 0.97725 (equal priors, threshold at 0.5).
  const next = normals(7);
  const pairs: ScoredPair[] = [];
  const n = 1000;
  for (let i = 0; i < n; i++)
    pairs.push({ distance: 0.3 + 0.1 * next(), same: true }, { distance: 0.7 + 0.1 * next(), same: false });
  const folded = assignFolds(pairs);
  const r = evaluatePairs(folded);
  close(r.auc, naiveAuc(pairs), 1e-12, 'auc vs pair counting');
  close(r.accuracy, naiveFoldAccuracy(folded), 1e-12, 'accuracy vs brute-force folds');
  close(r.auc, 0.99766, 0.003, 'auc vs theory');
  close(r.eer, 0.02275, 0.012, 'eer vs theory');
  close(r.accuracy, 0.97725, 0.012, 'accuracy vs theory');
  close(r.bestThreshold, 0.5, 0.03, 'best threshold vs theory');
  // EER by brute force: the threshold where FAR and FRR are closest (within one pair of the interpolated value).
  let bestGap = Infinity;
  let eerNaive = 0;
  for (const p of pairs) {
    const far = pairs.filter((q) => !q.same && q.distance <= p.distance).length / n;
    const frr = pairs.filter((q) => q.same && q.distance > p.distance).length / n;
    if (Math.abs(far - frr) < bestGap) {
      bestGap = Math.abs(far - frr);
      eerNaive = (far + frr) / 2;
    }
  }
  close(r.eer, eerNaive, 1 / n, 'eer vs brute force');
  // TAR at FAR 1e-2: accept up to (not including) the 11th smallest different-pair distance: 10 of 1000 accepted.
  const neg = pairs
    .filter((p) => !p.same)
    .map((p) => p.distance)
    .sort((a, b) => a - b);
  const tar = pairs.filter((p) => p.same && p.distance < neg[10]).length / n;
  close(r.tarAtFar[0].tar, tar, 1e-12, 'tar@1e-2');
});

test('folds: stratified in file order; the protocol refuses a single class', () => {
  const pairs = [true, true, false, true, false].map((same, i) => ({ distance: i, same }));
  assert.deepEqual(
    assignFolds(pairs, 2).map((p) => p.fold),
    [0, 1, 0, 0, 1],
  );
  assert.throws(
    () => rocCurve([{ distance: 1, same: true }]),
    /at least one same-person and one different-person pair/,
  );
});
