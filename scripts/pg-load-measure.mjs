#!/usr/bin/env node
// Measures loading synthetic 4096-d faces into a real PostgreSQL + pgvector server through PostgresStore
// (not a test, not the benchmark). Each run gets a fresh database, dropped afterwards.
//
//   node scripts/pg-load-measure.mjs --url postgres://postgres@127.0.0.1:55432/vggface --faces 100000
//       [--method addMany|add|load] [--batch 1000] [--precision fp32|fp16] [--ann] [--store path/to/postgres-store.js]
//
// --method addMany: store.addMany per batch (what the benchmark and bulk fills use); add: store.add per batch (what
// `gallery add` and the server do); load: store.load over all faces (drops and rebuilds the ANN index if there is one).
// --ann: create the approximate-search index before loading (as every gallery had it before).
// --build-after: then build the approximate-search index (store.ensureAnnIndex, what the first approximate search
// does), timed apart.
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values: a } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.VGGFACE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:55432/vggface' },
    faces: { type: 'string', default: '10000' },
    dim: { type: 'string', default: '4096' },
    batch: { type: 'string', default: '250' },
    method: { type: 'string', default: 'addMany' },
    precision: { type: 'string', default: 'fp32' },
    ann: { type: 'boolean', default: false },
    'build-after': { type: 'boolean', default: false },
    store: { type: 'string', default: new URL('../dist/src/gallery/postgres-store.js', import.meta.url).pathname },
  },
});
const n = Number(a.faces);
const dim = Number(a.dim);
const batch = Number(a.batch);
const { PostgresStore } = await import(a.store);

const { mulberry32: uniform } = await import('../dist/src/util/random.js');
function mulberry32(seed) {
  const r = uniform(seed);
  return () => r() - 0.5;
}
function face(i) {
  const centre = mulberry32(Math.floor(i / 5) * 7919 + 1);
  const noise = mulberry32(i * 104729 + 48);
  const v = new Float32Array(dim);
  let s = 0;
  for (let k = 0; k < dim; k++) s += (v[k] = centre() + 0.6 * noise()) ** 2;
  const norm = Math.sqrt(s);
  for (let k = 0; k < dim; k++) v[k] /= norm;
  return { identity: `p${Math.floor(i / 5)}`, contentHash: `h${i}`, source: `f${i}.jpg`, descriptor: v };
}
function* batches() {
  for (let s = 0; s < n; s += batch) yield Array.from({ length: Math.min(batch, n - s) }, (_, k) => face(s + k));
}

const admin = new pg.Client({ connectionString: a.url });
await admin.connect();
const dbName = `vggface_load_${process.pid}`;
await admin.query(`CREATE DATABASE ${dbName}`);
const u = new URL(a.url);
u.pathname = `/${dbName}`;
let store;
try {
  store = await PostgresStore.open(u.toString());
  await store.initialize({ modelKey: 'synthetic', modelName: 'synthetic', dimension: dim, precision: a.precision });
  const c = new pg.Client({ connectionString: u.toString() });
  await c.connect();
  const hasAnn = async () =>
    (await c.query(`SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'vggface_faces_binary_hnsw'`)).rows[0]
      .n === 1;
  if (a.ann && !(await hasAnn())) await store.ensureAnnIndex();
  const annBefore = await hasAnn();
  const t0 = performance.now();
  if (a.method === 'load') await store.load(batches());
  else for (const b of batches()) await (a.method === 'add' ? store.add(b) : store.addMany(b));
  const ms = performance.now() - t0;
  let buildSeconds;
  if (a['build-after']) {
    const t1 = performance.now();
    await store.ensureAnnIndex();
    buildSeconds = +((performance.now() - t1) / 1000).toFixed(1);
  }
  const count = await store.count();
  const size = (await c.query(`SELECT pg_size_pretty(pg_total_relation_size('vggface_faces')) AS s`)).rows[0].s;
  const annAfter = await hasAnn();
  await c.end();
  console.log(
    JSON.stringify({
      faces: n,
      stored: count,
      dim,
      precision: a.precision,
      method: a.method,
      batch,
      annIndexBefore: annBefore,
      annIndexAfter: annAfter,
      seconds: +(ms / 1000).toFixed(1),
      ...(buildSeconds === undefined ? {} : { indexBuildSeconds: buildSeconds }),
      facesPerSecond: Math.round(n / (ms / 1000)),
      tableSize: size,
    }),
  );
} finally {
  await store?.close();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
