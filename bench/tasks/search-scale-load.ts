/**
 * "Gallery at scale", step 1: fills a gallery (SQLite file or PostgreSQL database) from a face set, the way a bulk
 * user would: the first `fit` faces, the approximate index (the projection fitted on them), then the rest (each
 * face projected on the way in). Meanwhile computes the exact answers for the queries (ONNX Runtime products of
 * the queries against every chunk, the best faces kept), written beside the queries for step 2.
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { openGemm } from '../../src/gallery/gemm.js';
import { PostgresStore } from '../../src/gallery/postgres-store.js';
import { SqliteStore } from '../../src/gallery/sqlite-store.js';
import type { GalleryStore, NewFace } from '../../src/gallery/types.js';
import { finishTask, taskArgs } from '../harness.js';
import { openScaleSet, type ScaleSetName } from '../scale-data.js';

interface Args {
  store: 'sqlite' | 'postgres';
  set: ScaleSetName;
  size: number;
  components: number;
  queries: number;
  fit: number;
  /** SQLite file, or PostgreSQL URL of an empty database. */
  location: string;
  truthPath: string;
}
const a = taskArgs<Args>();
const CHUNK = 4096;
/** Faces kept per query while scanning: enough for 10 distinct identities (5 faces each, or fewer mates). */
const KEEP = 200;

const set = await openScaleSet(a.set, a.size);
const size = set.size;
const dim = set.dim;
const queries = await set.queries(a.queries);
const qm = new Float32Array(queries.length * dim);
queries.forEach((q, i) => qm.set(q.data, i * dim));
const gemm = await openGemm({ transB: true });
const best = queries.map(() => ({
  score: new Float64Array(KEEP).fill(-Infinity),
  id: new Int32Array(KEEP).fill(-1),
  identity: new Int32Array(KEEP),
  min: -Infinity,
}));

const store: GalleryStore & { load?: unknown } =
  a.store === 'sqlite'
    ? await SqliteStore.open(a.location, { create: true })
    : await PostgresStore.open(a.location, { statementTimeoutMs: 0 });
await store.initialize({ modelKey: `bench-${a.set}`, modelName: `bench ${a.set}`, dimension: dim, precision: 'fp32' });

const times = { loadMs: 0, fitIndexMs: 0, indexMs: 0 };
async function put(faces: NewFace[]): Promise<void> {
  const t = performance.now();
  if (store instanceof PostgresStore) await store.load([faces]);
  else for (let s = 0; s < faces.length; s += 1024) await store.add(faces.slice(s, s + 1024));
  times.loadMs += performance.now() - t;
}

let fitted = false;
for (let start = 0; start < size; start += CHUNK) {
  const count = Math.min(CHUNK, size - start);
  const c = await set.chunk(start, count);
  // Exact answers: the queries' dot products with this chunk (rows are unit vectors: cosine = dot).
  const scores = (
    await gemm.multiply({ data: qm, rows: queries.length, cols: dim }, { data: c.data, rows: count, cols: dim })
  ).data;
  for (let q = 0; q < queries.length; q++) {
    const b = best[q];
    for (let r = 0; r < count; r++) {
      const s = scores[q * count + r];
      if (s <= b.min) continue;
      let worst = 0;
      for (let i = 1; i < KEEP; i++) if (b.score[i] < b.score[worst]) worst = i;
      b.score[worst] = s;
      b.id[worst] = start + r;
      b.identity[worst] = c.identity[r];
      let m = Infinity;
      for (let i = 0; i < KEEP; i++) if (b.score[i] < m) m = b.score[i];
      b.min = m;
    }
  }
  const faces: NewFace[] = [];
  for (let i = 0; i < count; i++)
    faces.push({
      identity: `p${c.identity[i]}`,
      contentHash: `f${start + i}`,
      source: `f${start + i}`,
      descriptor: c.data.subarray(i * dim, (i + 1) * dim),
    });
  await put(faces);
  if (!fitted && start + count >= Math.min(a.fit, size)) {
    const t = performance.now();
    await store.ensureAnnIndex({ components: a.components, sample: a.fit });
    times.fitIndexMs = performance.now() - t;
    fitted = true;
    // PostgreSQL: drop the HNSW index for the rest of the load and build it once at the end (what load() does too).
    if (store instanceof PostgresStore) {
      const c2 = new pg.Client({ connectionString: a.location });
      await c2.connect();
      await c2.query('DROP INDEX vggface_projected_hnsw');
      await c2.end();
    }
  }
  if ((start / CHUNK) % 16 === 0) process.stderr.write(`  ${a.store} ${a.set}: ${start + count} of ${size} faces\n`);
}
if (store instanceof PostgresStore) {
  const t = performance.now();
  await store.ensureAnnIndex();
  times.indexMs = performance.now() - t;
}
await store.close();
await gemm.close();

// Per query: faces by score; the exact top 10 identities by their best face.
const truth = [];
for (let q = 0; q < queries.length; q++) {
  const order = [...Array(KEEP).keys()]
    .filter((i) => best[q].id[i] >= 0)
    .sort((x, y) => best[q].score[y] - best[q].score[x]);
  const seen: { identity: string; distance: number }[] = [];
  for (const i of order) {
    const identity = `p${best[q].identity[i]}`;
    if (!seen.some((s) => s.identity === identity)) seen.push({ identity, distance: 1 - best[q].score[i] });
    if (seen.length === 10) break;
  }
  truth.push({
    identity: `p${queries[q].identity}`,
    exact: seen,
    faces: order.slice(0, 10).map((i) => `f${best[q].id[i]}`),
  });
}
await set.close();
writeFileSync(`${a.truthPath}.f32`, Buffer.from(qm.buffer, qm.byteOffset, qm.byteLength));
writeFileSync(`${a.truthPath}.json`, JSON.stringify({ dim, size, description: set.description, truth }));
finishTask({ ...times, size, description: set.description });
