/**
 * Which candidates to re-rank: recall@10 of each candidate generator, by brute force over a set held in memory (no
 * index, so only the representation is measured): the nearest `c` by Hamming distance between binary codes of the raw
 * descriptor (the earlier design) and of the centred descriptor, and by Euclidean distance between PCA projections of
 * several sizes; each candidate set re-ranked by the exact distance. Also the share of variance each projection keeps.
 */
import { openGemm } from '../../src/gallery/gemm.js';
import { explainedVariance, fitProjection, openProjector } from '../../src/gallery/projection.js';
import { finishTask, taskArgs } from '../harness.js';
import { openScaleSet, type ScaleSetName } from '../scale-data.js';

const a = taskArgs<{
  set: ScaleSetName;
  size: number;
  queries: number;
  candidates: number[];
  components: number[];
  fit: number;
}>();
const set = await openScaleSet(a.set, a.size);
const { dim, size } = set;
const data = new Float32Array(size * dim);
for (let s = 0; s < size; s += 4096) data.set((await set.chunk(s, Math.min(4096, size - s))).data, s * dim);
const queries = await set.queries(a.queries);
const qm = new Float32Array(queries.length * dim);
queries.forEach((q, i) => qm.set(q.data, i * dim));
await set.close();
const gemm = await openGemm({ transB: true });

/** Per query, all rows' scores by `score` (higher is nearer), in row blocks. */
async function scoresOf(rows: Float32Array, q: Float32Array, d: number, n: number): Promise<Float32Array> {
  const out = new Float32Array((q.length / d) * n);
  const nq = q.length / d;
  for (let s = 0; s < n; s += 16384) {
    const c = Math.min(16384, n - s);
    const part = (
      await gemm.multiply({ data: q, rows: nq, cols: d }, { data: rows.subarray(s * d, (s + c) * d), rows: c, cols: d })
    ).data;
    for (let i = 0; i < nq; i++) out.set(part.subarray(i * c, (i + 1) * c), i * n + s);
  }
  return out;
}
const topBy = (key: Float32Array | Float64Array, offset: number, n: number, c: number): number[] => {
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((x, y) => key[offset + y] - key[offset + x]);
  return idx.slice(0, c);
};

const exactScores = await scoresOf(data, qm, dim, size);
const exactTop = queries.map((_, i) => new Set(topBy(exactScores, i * size, size, 10)));
const recall = (candidates: number[][], c: number) => {
  let hits = 0;
  candidates.forEach((cand, i) => {
    const best = cand
      .slice(0, c)
      .sort((x, y) => exactScores[i * size + y] - exactScores[i * size + x])
      .slice(0, 10);
    hits += best.filter((r) => exactTop[i].has(r)).length;
  });
  return hits / (10 * queries.length);
};
const maxC = Math.max(...a.candidates);
const results: { method: string; kept?: number; recall: Record<number, number> }[] = [];

// Binary codes: raw signs, and signs after subtracting the mean.
const mean = new Float64Array(dim);
for (let r = 0; r < size; r++) for (let i = 0; i < dim; i++) mean[i] += data[r * dim + i] / size;
for (const centred of [false, true]) {
  const words = dim / 32;
  const code = (v: Float32Array, off: number, out: Uint32Array, o: number) => {
    for (let w = 0; w < words; w++) {
      let x = 0;
      for (let b = 0; b < 32; b++) if (v[off + w * 32 + b] - (centred ? mean[w * 32 + b] : 0) > 0) x |= 1 << b;
      out[o + w] = x >>> 0;
    }
  };
  const codes = new Uint32Array(size * words);
  for (let r = 0; r < size; r++) code(data, r * dim, codes, r * words);
  const pop = (x: number) => {
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  };
  const cands: number[][] = [];
  const qc = new Uint32Array(words);
  const key = new Float64Array(size);
  for (let i = 0; i < queries.length; i++) {
    code(qm, i * dim, qc, 0);
    for (let r = 0; r < size; r++) {
      let h = 0;
      for (let w = 0; w < words; w++) h += pop(codes[r * words + w] ^ qc[w]);
      key[r] = -h + exactScores[i * size + r] * 1e-6; // ties broken by nothing the method knows: tiny, for determinism
    }
    cands.push(topBy(key, 0, size, maxC));
  }
  results.push({
    method: centred
      ? 'binary codes of the centred descriptor (4096 bits)'
      : 'binary codes of the raw descriptor (4096 bits, the earlier design)',
    recall: Object.fromEntries(a.candidates.map((c) => [c, recall(cands, c)])),
  });
}

// PCA projections, fitted on a sample of the set.
const fitRows = Math.min(a.fit, size);
for (const k of a.components) {
  const p = await fitProjection(data.subarray(0, fitRows * dim), fitRows, dim, Math.min(k, fitRows - 1));
  const proj = await openProjector(p);
  const pd = await proj.project(data, size);
  const pq = await proj.project(qm, queries.length);
  await proj.close();
  const dots = await scoresOf(pd, pq, p.components, size);
  const norms = new Float64Array(size);
  for (let r = 0; r < size; r++) for (let j = 0; j < p.components; j++) norms[r] += pd[r * p.components + j] ** 2;
  const cands = queries.map((_, i) => {
    const key = new Float64Array(size);
    for (let r = 0; r < size; r++) key[r] = 2 * dots[i * size + r] - norms[r]; // -(|p|^2 - 2 q.p): nearer is higher
    return topBy(key, 0, size, maxC);
  });
  results.push({
    method: `PCA, ${p.components} components`,
    kept: explainedVariance(p),
    recall: Object.fromEntries(a.candidates.map((c) => [c, recall(cands, c)])),
  });
}
await gemm.close();
finishTask({ size, queries: queries.length, results });
