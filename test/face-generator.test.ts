/**
 * The benchmark's face generator (bench/face-generator.ts), fitted to a small synthetic set made the way fc7 is
 * (a Gaussian with between- and within-identity structure, then ReLU and the L2 norm): its rows, determinism,
 * chunking, queries, storage, and the spectrum of what it generates against the set it was fitted on.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import {
  fitFaceGenerator,
  generateFaces,
  generateQuery,
  loadGeneratorParams,
  openFaceGenerator,
  saveGeneratorParams,
  setStatistics,
  type FaceGeneratorParams,
} from '../bench/face-generator.js';
import { augmentTransform, personsFromPairs, NO_AUGMENTATION } from '../bench/face-augment.js';
import { mulberry32, gaussian } from '../src/util/random.js';

const DIM = 96;
const IDENTITIES = 60;
const PER = 40;
const ROWS = IDENTITIES * PER;

const rng = mulberry32;

/** Random orthonormal-ish directions (Gram-Schmidt of Gaussian rows). */
function directions(r: () => number, k: number): Float64Array {
  const d = new Float64Array(k * DIM);
  for (let j = 0; j < k; j++) {
    const row = d.subarray(j * DIM, (j + 1) * DIM);
    for (let i = 0; i < DIM; i++) row[i] = gaussian(r);
    for (let p = 0; p < j; p++) {
      const q = d.subarray(p * DIM, (p + 1) * DIM);
      let s = 0;
      for (let i = 0; i < DIM; i++) s += row[i] * q[i];
      for (let i = 0; i < DIM; i++) row[i] -= s * q[i];
    }
    const n = Math.hypot(...row);
    for (let i = 0; i < DIM; i++) row[i] /= n;
  }
  return d;
}

/**
 * Pre-activations like the face set's: mean + between (6 directions) + within (10 directions) + isotropic noise,
 * scaled so ReLU of a row is unit-norm; returns them, their descriptors and the labels.
 */
function syntheticSet(): { pre: Float32Array; descriptors: Float32Array; identity: Int32Array } {
  const r = rng(11);
  const mean = Float64Array.from({ length: DIM }, () => 0.08 + 0.3 * (r() - 0.5));
  const b = directions(r, 6);
  const w = directions(r, 10);
  const sb = [0.5, 0.4, 0.3, 0.25, 0.2, 0.15];
  const swv = [0.45, 0.35, 0.3, 0.25, 0.2, 0.18, 0.15, 0.12, 0.1, 0.08];
  const pre = new Float32Array(ROWS * DIM);
  const descriptors = new Float32Array(ROWS * DIM);
  const identity = new Int32Array(ROWS);
  const v = new Float64Array(DIM);
  for (let g = 0; g < IDENTITIES; g++) {
    const centre = Float64Array.from(mean);
    for (let j = 0; j < sb.length; j++) {
      const z = gaussian(r) * sb[j];
      for (let i = 0; i < DIM; i++) centre[i] += z * b[j * DIM + i];
    }
    for (let f = 0; f < PER; f++) {
      const row = g * PER + f;
      identity[row] = g;
      v.set(centre);
      for (let j = 0; j < swv.length; j++) {
        const z = gaussian(r) * swv[j];
        for (let i = 0; i < DIM; i++) v[i] += z * w[j * DIM + i];
      }
      let ss = 0;
      for (let i = 0; i < DIM; i++) {
        v[i] += 0.08 * gaussian(r);
        if (v[i] > 0) ss += v[i] * v[i];
      }
      const inv = 1 / Math.sqrt(ss);
      for (let i = 0; i < DIM; i++) {
        pre[row * DIM + i] = v[i] * inv;
        descriptors[row * DIM + i] = Math.max(0, v[i]) * inv;
      }
    }
  }
  return { pre, descriptors, identity };
}

let set: ReturnType<typeof syntheticSet>;
let params: FaceGeneratorParams;

before(async () => {
  set = syntheticSet();
  params = await fitFaceGenerator(set.pre, ROWS, DIM, set.identity, {
    betweenComponents: 16,
    withinComponents: 24,
    facesPerIdentity: PER,
  });
});

test('fit: components limited by the identities, variances decreasing, residual for the rest', () => {
  assert.equal(params.dim, DIM);
  assert.equal(params.between.variances.length, 16);
  assert.equal(params.within.variances.length, 24);
  for (const m of [params.between, params.within]) {
    for (let j = 1; j < m.variances.length; j++) assert.ok(m.variances[j] <= m.variances[j - 1] * (1 + 1e-6));
    assert.ok(m.residual >= 0 && m.residual < m.variances[m.variances.length - 1] * 1.5, `residual ${m.residual}`);
  }
  // 6 between directions were put in: the 7th fitted one holds only the within part's share of identity means.
  assert.ok(params.between.variances[6] < params.between.variances[5] * 0.5);
});

test('faces: unit rows, no negative values, about as many zeros as the set', async () => {
  const { data, identity } = await generateFaces(params, 0, 2000);
  assert.equal(data.length, 2000 * DIM);
  assert.equal(identity[0], 0);
  assert.equal(identity[PER], 1);
  assert.equal(identity[1999], Math.floor(1999 / PER));
  for (let r = 0; r < 2000; r++) {
    let ss = 0;
    for (let i = 0; i < DIM; i++) {
      const v = data[r * DIM + i];
      assert.ok(v >= 0, `row ${r} value ${v}`);
      ss += v * v;
    }
    assert.ok(Math.abs(Math.sqrt(ss) - 1) < 1e-5, `row ${r} norm ${Math.sqrt(ss)}`);
  }
  const real = await setStatistics(set.descriptors, ROWS, DIM, set.identity, 10);
  const gen = await setStatistics(data, 2000, DIM, identity, 10);
  assert.ok(Math.abs(gen.zeros - real.zeros) < 0.03, `zeros ${gen.zeros} vs ${real.zeros}`);
  assert.ok(real.zeros > 0.2, `the synthetic set should have ReLU zeros (${real.zeros})`);
});

test('faces: deterministic for a seed, another seed differs', async () => {
  const a = await generateFaces(params, 100, 50, 7);
  const b = await generateFaces(params, 100, 50, 7);
  const c = await generateFaces(params, 100, 50, 8);
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
});

test('faces: chunk boundaries give the same rows as one call (also across the 2,048-row internal chunks)', async () => {
  const g = await openFaceGenerator(params);
  try {
    const whole = await g.faces(0, 4300, 3);
    const parts = [await g.faces(0, 37, 3), await g.faces(37, 4000, 3), await g.faces(4037, 263, 3)];
    const joined = new Float32Array(4300 * DIM);
    let o = 0;
    for (const p of parts) {
      joined.set(p.data, o);
      o += p.data.length;
    }
    assert.deepEqual(joined, whole.data);
    assert.deepEqual(Int32Array.from(parts.flatMap((p) => [...p.identity])), whole.identity);
  } finally {
    await g.close();
  }
});

test('spectrum: the generated top 10 variances are within 20% of the set fitted on', async () => {
  const { data, identity } = await generateFaces(params, 0, ROWS, 5);
  const real = await setStatistics(set.descriptors, ROWS, DIM, set.identity, 10);
  const gen = await setStatistics(data, ROWS, DIM, identity, 10);
  for (let j = 0; j < 10; j++) {
    const ratio = gen.spectrum[j] / real.spectrum[j];
    assert.ok(
      ratio > 0.8 && ratio < 1.2,
      `variance ${j}: generated ${gen.spectrum[j]} vs set ${real.spectrum[j]} (ratio ${ratio.toFixed(3)})`,
    );
  }
  const total = gen.totalVariance / real.totalVariance;
  assert.ok(total > 0.8 && total < 1.2, `total variance ratio ${total}`);
  // Mates are closer than non-mates, by about as much as in the set.
  assert.ok(gen.mateCosine > gen.nonMateCosine);
  assert.ok(Math.abs(gen.mateCosine - real.mateCosine) < 0.05, `mate cosine ${gen.mateCosine} vs ${real.mateCosine}`);
  assert.ok(
    Math.abs(gen.nonMateCosine - real.nonMateCosine) < 0.05,
    `non-mate cosine ${gen.nonMateCosine} vs ${real.nonMateCosine}`,
  );
});

test('query: a new face of the identity, deterministic, nearer its mates than others', async () => {
  const g = await openFaceGenerator(params);
  try {
    const { data } = await g.faces(0, 400, 1);
    const q = await g.query(3, 1);
    assert.deepEqual(q, await generateQuery(params, 3, 1));
    assert.notDeepEqual(q, await g.query(3, 2));
    let ss = 0;
    for (const v of q) {
      assert.ok(v >= 0);
      ss += v * v;
    }
    assert.ok(Math.abs(Math.sqrt(ss) - 1) < 1e-5);
    const cos = (r: number) => {
      let s = 0;
      for (let i = 0; i < DIM; i++) s += q[i] * data[r * DIM + i];
      return s;
    };
    let mates = 0;
    let others = 0;
    for (let r = 0; r < 400; r++) {
      const c = cos(r);
      assert.ok(c < 1 - 1e-6, `query equals row ${r}`);
      if (Math.floor(r / PER) === 3) mates += c / PER;
      else others += c / (400 - PER);
    }
    assert.ok(mates > others + 0.02, `mates ${mates} vs others ${others}`);
  } finally {
    await g.close();
  }
});

test('params: saved and loaded back unchanged', () => {
  const dir = mkdtempSync(join(tmpdir(), 'face-generator-'));
  try {
    const path = join(dir, 'g.bin');
    saveGeneratorParams(path, params);
    const back = loadGeneratorParams(path);
    assert.deepEqual(back.mean, params.mean);
    assert.deepEqual(back.within.basis, params.within.basis);
    assert.deepEqual(back.between.variances, params.between.variances);
    assert.equal(back.within.residual, params.within.residual);
    assert.equal(back.facesPerIdentity, PER);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('augment helpers: persons by union-find over Yes pairs; the identity augmentation keeps the transform', () => {
  const dir = mkdtempSync(join(tmpdir(), 'face-pairs-'));
  try {
    const csv = join(dir, 'pivot.csv');
    writeFileSync(csv, 'file_x,file_y,decision\nx/a.jpg,x/b.jpg,Yes\nb.jpg,c.jpg,Yes\na.jpg,d.jpg,No\n');
    assert.deepEqual(personsFromPairs(csv, ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg', 'e.jpg']), [0, 0, 0, 1, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const t = { a: 0.8, b: 0.1, tx: 12, ty: -3 };
  const same = augmentTransform(t, NO_AUGMENTATION, 224);
  for (const k of ['a', 'b', 'tx', 'ty'] as const) assert.ok(Math.abs(same[k] - t[k]) < 1e-9);
});
