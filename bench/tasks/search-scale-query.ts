/**
 * "Gallery at scale", step 2, in a fresh process (its peak RSS is the search's own): opens the gallery step 1 filled,
 * searches approximately with each number of candidates (k = 10, cosine) and compares with the exact answers:
 * recall@10 (share of the exact top-10 identities found), top-1 equal to exact, top-1 the query's identity.
 * Exact search is timed on a few queries where it fits in memory.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { PostgresStore } from '../../src/gallery/postgres-store.js';
import { SqliteStore } from '../../src/gallery/sqlite-store.js';
import type { GalleryStore } from '../../src/gallery/types.js';
import { finishTask, median, taskArgs } from '../harness.js';

interface Args {
  store: 'sqlite' | 'postgres';
  location: string;
  truthPath: string;
  candidates: number[];
  exactQueries: number;
}
const a = taskArgs<Args>();
const meta = JSON.parse(readFileSync(`${a.truthPath}.json`, 'utf8')) as {
  dim: number;
  size: number;
  truth: { identity: string; exact: { identity: string; distance: number }[]; faces: string[] }[];
};
const qb = readFileSync(`${a.truthPath}.f32`);
const qs = new Float32Array(new Uint8Array(qb).buffer);
const query = (i: number) => qs.subarray(i * meta.dim, (i + 1) * meta.dim);
const pct = (xs: number[], p: number) =>
  [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

/** What the search section reports of a PostgreSQL server (bench/sections/search.ts). */
export interface ServerFacts {
  facesBytes: number;
  projectedBytes: number;
  indexBytes: number;
  sharedBuffers: string;
  prewarm: string;
  hugePages: string;
}

/**
 * Whether the server's shared memory is in huge pages: its huge_pages setting, and on this machine (a server on
 * loopback) the huge pages in use. With 4 kB pages each backend faults in every page of shared_buffers it touches:
 * at 1M faces a fresh connection's walks took 2-3x as long, the store's long-lived one's searches p50 36 ms against
 * 32 (BENCHMARKS.md "Gallery at scale").
 */
function hugePages(url: string, setting: string): string {
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) return `huge_pages ${setting}`;
  const info = readFileSync('/proc/meminfo', 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  const usedMib =
    ((field('HugePages_Total') - field('HugePages_Free') + field('HugePages_Rsvd')) * field('Hugepagesize')) / 1024;
  return usedMib > 0
    ? `huge_pages ${setting}, ${Math.round(usedMib).toLocaleString('en-US')} MiB of huge pages in use`
    : `huge_pages ${setting}, no huge pages in use (vm.nr_hugepages ${field('HugePages_Total')})`;
}

/**
 * PostgreSQL: table and index sizes, the server's buffer cache against the HNSW index, and the index loaded into it
 * with pg_prewarm where the extension can be created (a steady-state server has its hot index in shared_buffers; the
 * walk reads ~9-16k index pages per search, from the OS page cache when the index does not fit: p50 98 ms against
 * 52 ms warm at 1M, here). The faces' descriptors (16 GiB of TOAST at 1M) are left as they are: re-ranking reads them
 * where they lie. Searching changes none of these, so they are read once, before it.
 */
async function serverFacts(url: string): Promise<ServerFacts> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ faces: string; projected: string; idx: string; sb: string; hp: string }>(
      "SELECT pg_total_relation_size('vggface_faces') AS faces, " +
        "pg_relation_size('vggface_projected') AS projected, pg_relation_size('vggface_projected_hnsw') AS idx, " +
        "current_setting('shared_buffers') AS sb, current_setting('huge_pages') AS hp",
    );
    let prewarm: string;
    try {
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_prewarm');
      const w = await c.query<{ n: string }>(`SELECT pg_prewarm('vggface_projected_hnsw') AS n`);
      prewarm = `${Number(w.rows[0].n).toLocaleString('en-US')} HNSW pages prewarmed`;
    } catch (err) {
      prewarm = `not prewarmed (${(err as Error).message})`;
    }
    return {
      facesBytes: Number(r.rows[0].faces),
      projectedBytes: Number(r.rows[0].projected),
      indexBytes: Number(r.rows[0].idx),
      sharedBuffers: r.rows[0].sb,
      prewarm,
      hugePages: hugePages(url, r.rows[0].hp),
    };
  } finally {
    await c.end();
  }
}
if (a.store === 'postgres') {
  // A gallery loaded by an earlier vggface has an index of an earlier layout: built again here, before the sizes
  // and the prewarm, so that neither describes the old one and the first search does not build it.
  const pre = await PostgresStore.open(a.location, { statementTimeoutMs: 0 });
  const t = performance.now();
  if (await pre.ensureAnnIndex())
    process.stderr.write(`  approximate index built again in ${((performance.now() - t) / 1000).toFixed(0)} s\n`);
  await pre.close();
}
const server = a.store === 'postgres' ? await serverFacts(a.location) : undefined;

const t0 = performance.now();
const store: GalleryStore & Pick<PostgresStore, 'nearestFaces'> =
  a.store === 'sqlite'
    ? await SqliteStore.open(a.location, { create: false })
    : await PostgresStore.open(a.location, { statementTimeoutMs: 0 });
// The first search loads the index (SQLite: every projection into memory) and opens the ONNX Runtime sessions.
await store.search(query(0), { k: 10, metric: 'cosine', approximate: true, candidates: a.candidates[0] });
const openMs = performance.now() - t0;
const rssAfterOpen = process.memoryUsage().rss;

const approx = [];
for (const c of a.candidates) {
  const times: number[] = [];
  let hits = 0;
  let faceHits = 0;
  let top1Exact = 0;
  let top1Identity = 0;
  for (let i = 0; i < meta.truth.length; i++) {
    const t = performance.now();
    const r = await store.search(query(i), { k: 10, metric: 'cosine', approximate: true, candidates: c });
    times.push(performance.now() - t);
    const exact = meta.truth[i].exact.map((e) => e.identity);
    hits += r.filter((m) => exact.includes(m.identity)).length;
    if (r[0]?.identity === exact[0]) top1Exact++;
    if (r[0]?.identity === meta.truth[i].identity) top1Identity++;
    // Faces: the nearest 10 faces (not grouped by identity), ANN's usual recall (untimed).
    const faces = await store.nearestFaces(query(i), { k: 10, metric: 'cosine', approximate: true, candidates: c });
    faceHits += faces.filter((f) => meta.truth[i].faces.includes(f.source)).length;
  }
  const n = meta.truth.length;
  approx.push({
    candidates: c,
    p50Ms: median(times),
    p99Ms: pct(times, 0.99),
    recallAt10: faceHits / (10 * n),
    identityRecallAt10: hits / (10 * n),
    top1Exact: top1Exact / n,
    top1Identity: top1Identity / n,
  });
}
// Resident memory once the approximate searches are done (the exact ones below may load every descriptor).
const rssAfterApproximate = process.memoryUsage().rss;
const exactTimes: number[] = [];
let exactTop1 = 0;
for (let i = 0; i < Math.min(a.exactQueries, meta.truth.length); i++) {
  const t = performance.now();
  const r = await store.search(query(i), { k: 10, metric: 'cosine' });
  exactTimes.push(performance.now() - t);
  if (r[0]?.identity === meta.truth[i].exact[0].identity) exactTop1++;
}
await store.close();
finishTask({
  size: meta.size,
  openMs,
  rssAfterOpen,
  rssAfterApproximate,
  approx,
  exact: exactTimes.length
    ? { p50Ms: median(exactTimes), queries: exactTimes.length, top1Exact: exactTop1 / exactTimes.length }
    : undefined,
  server,
});
