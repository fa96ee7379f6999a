/** The approximate search's PCA: fitted directions and variances against a construction with known ones. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeProjection,
  encodeProjection,
  explainedVariance,
  fitProjection,
  openProjector,
  symmetricEigen,
} from '../src/gallery/projection.js';
import { mulberry32, gaussian } from '../src/util/random.js';

const rng = mulberry32;

test('symmetricEigen: eigenpairs of a symmetric matrix satisfy A v = lambda v', () => {
  const n = 12;
  const r = rng(3);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = r() - 0.5;
  const copy = Float64Array.from(a);
  const { values, vectors } = symmetricEigen(a, n);
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      let av = 0;
      for (let k = 0; k < n; k++) av += copy[i * n + k] * vectors[k * n + j];
      assert.ok(Math.abs(av - values[j] * vectors[i * n + j]) < 1e-10, `A v = lambda v at (${i}, ${j})`);
    }
  }
});

test('fitProjection recovers the leading directions and variances of a low-rank set plus noise', async () => {
  const dim = 256;
  const count = 3000;
  const rank = 8;
  const r = rng(11);
  // Orthonormal directions: the first `rank` coordinate axes rotated by a fixed random orthogonal-ish mix.
  const dirs: Float64Array[] = [];
  for (let k = 0; k < rank; k++) {
    const d = new Float64Array(dim);
    for (let i = 0; i < dim; i++) d[i] = gaussian(r);
    for (const e of dirs) {
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += d[i] * e[i];
      for (let i = 0; i < dim; i++) d[i] -= dot * e[i];
    }
    let n = 0;
    for (let i = 0; i < dim; i++) n += d[i] * d[i];
    for (let i = 0; i < dim; i++) d[i] /= Math.sqrt(n);
    dirs.push(d);
  }
  const sd = Array.from({ length: rank }, (_, k) => 10 / (k + 1)); // variances 100, 25, 11.1, ...
  const noise = 0.1;
  const offset = 3;
  const sample = new Float32Array(count * dim);
  for (let s = 0; s < count; s++) {
    for (let i = 0; i < dim; i++) sample[s * dim + i] = offset + noise * gaussian(r);
    for (let k = 0; k < rank; k++) {
      const z = sd[k] * gaussian(r);
      for (let i = 0; i < dim; i++) sample[s * dim + i] += z * dirs[k][i];
    }
  }
  const p = await fitProjection(sample, count, dim, rank, { threads: 1 });
  assert.equal(p.components, rank);
  for (let i = 0; i < dim; i++) assert.ok(Math.abs(p.mean[i] - offset) < 0.6, `mean[${i}] = ${p.mean[i]}`);
  for (let k = 0; k < rank; k++) {
    // The fitted direction k is the constructed one (up to sign): |cos| near 1.
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += p.basis[k * dim + i] * dirs[k][i];
    assert.ok(Math.abs(dot) > 0.99, `direction ${k}: |cos| ${Math.abs(dot)}`);
    const expected = sd[k] ** 2;
    assert.ok(Math.abs(p.variances[k] - expected) / expected < 0.12, `variance ${k}: ${p.variances[k]} vs ${expected}`);
  }
  // Rows orthonormal.
  for (let a = 0; a < rank; a++) {
    for (let b = 0; b <= a; b++) {
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += p.basis[a * dim + i] * p.basis[b * dim + i];
      assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-5, `basis rows ${a}, ${b}: ${dot}`);
    }
  }
  const kept = explainedVariance(p);
  const total = sd.reduce((s, x) => s + x * x, 0) + dim * noise * noise;
  assert.ok(Math.abs(kept - (total - dim * noise * noise) / total) < 0.02, `explained ${kept}`);

  // Projecting: (x - mean) . basis^T, the same as a float64 computation; and the stored bytes round-trip.
  const projector = await openProjector(
    decodeProjection({
      ...encodeProjection(p),
      dim,
      components: rank,
      totalVariance: p.totalVariance,
      fittedOn: count,
    }),
    1,
  );
  try {
    const out = await projector.project(sample.subarray(0, 4 * dim), 4);
    for (let s = 0; s < 4; s++) {
      for (let k = 0; k < rank; k++) {
        let e = 0;
        for (let i = 0; i < dim; i++) e += (sample[s * dim + i] - p.mean[i]) * p.basis[k * dim + i];
        assert.ok(
          Math.abs(out[s * rank + k] - e) < 1e-3 * (1 + Math.abs(e)),
          `row ${s} component ${k}: ${out[s * rank + k]} vs ${e}`,
        );
      }
    }
  } finally {
    await projector.close();
  }
});

test('fitProjection refuses a component count beyond the dimension or pgvector limit', async () => {
  await assert.rejects(
    fitProjection(new Float32Array(40), 4, 10, 11),
    /Expected an integer from 1 to 10 for components but received number 11/,
  );
  await assert.rejects(fitProjection(new Float32Array(10), 1, 10, 2), /at least 2 descriptors/);
});
