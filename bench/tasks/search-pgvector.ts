/**
 * pgvector search latency and recall@10 over the PostgreSQL wire protocol: PGlite (+ pgvector) on an on-disk data
 * directory, served by pglite-socket, queried through the gallery's PostgresStore (the pg client).
 * Exact (a scan) and approximate (HNSW on binary_quantize()::bit(D), candidates re-ranked exactly).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { PostgresStore } from '../../src/gallery/postgres-store.js';
import type { Precision } from '../../src/gallery/scorer.js';
import type { NewFace } from '../../src/gallery/types.js';
import { finishTask, median, taskArgs, WORK_DIR } from '../harness.js';
import { FACES_PER_IDENTITY, syntheticFace, syntheticQuery } from '../synthetic.js';

const { size, precision, dim, queries, candidates } = taskArgs<{ size: number; precision: Precision; dim: number; queries: number; candidates: number[] }>();
const dataDir = mkdtempSync(join(WORK_DIR, 'pglite-'));
const db = await PGlite.create({ dataDir, extensions: { vector } });
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0 });
await server.start();
const store = await PostgresStore.open(`postgres://postgres@${server.getServerConn()}/postgres`);
try {
  await store.initialize({ modelKey: 'synthetic', modelName: 'synthetic', dimension: dim, precision });
  const t0 = performance.now();
  const batch = 250;
  for (let s = 0; s < size; s += batch) {
    const faces: NewFace[] = [];
    for (let i = s; i < Math.min(size, s + batch); i++) {
      faces.push({ identity: `p${Math.floor(i / FACES_PER_IDENTITY)}`, contentHash: `h${i}`, source: '', descriptor: syntheticFace(i, new Float32Array(dim)) });
    }
    await store.addMany(faces);
  }
  const loadMs = performance.now() - t0;
  const identities = Math.ceil(size / FACES_PER_IDENTITY);
  const qs = Array.from({ length: queries }, (_, q) => syntheticQuery(Math.floor(((q + 0.5) / queries) * identities), dim));
  const exactTimes: number[] = [];
  const exactIds: number[][] = [];
  for (const q of qs) {
    const t = performance.now();
    const r = await store.nearestFaces(q, { k: 10, metric: 'cosine' });
    exactTimes.push(performance.now() - t);
    exactIds.push(r.map((x) => x.id));
  }
  const approx = [];
  for (const c of candidates) {
    const times: number[] = [];
    let hits = 0;
    for (let i = 0; i < qs.length; i++) {
      const t = performance.now();
      const r = await store.nearestFaces(qs[i], { k: 10, metric: 'cosine', approximate: true, candidates: c });
      times.push(performance.now() - t);
      hits += r.filter((x) => exactIds[i].includes(x.id)).length;
    }
    approx.push({ candidates: c, medianMs: median(times), recallAt10: hits / (10 * qs.length) });
  }
  finishTask({ loadMs, exactMedianMs: median(exactTimes), approx });
} finally {
  await store.close();
  await server.stop();
  await db.close();
  rmSync(dataDir, { recursive: true, force: true });
}
