/**
 * Issue 12: galleries at scale. Approximate search (candidates from the PCA projection, re-ranked exactly) in
 * PostgreSQL + pgvector on a real server and in the embedded SQLite gallery, on three face sets (bench/scale-data.ts),
 * against exact answers computed by the benchmark itself; and exact embedded search, the reference.
 * Sizes that cannot fit are reported with the reason instead of being measured.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { envValue } from '../../src/util/env.js';
import {
  EF_SEARCH_PER_CANDIDATE,
  efSearch,
  HNSW_BUILD,
  MIN_EF_SEARCH,
  WALK_COMPONENTS,
} from '../../src/gallery/postgres-store.js';
import { mb, ROOT, runTask, WORK_DIR, type Section } from '../harness.js';
import type { ScaleSetName } from '../scale-data.js';
import type { ServerFacts } from '../tasks/search-scale-query.js';

const DIM = 4096;
const GiB = 1024 ** 3;
const PG_SCRIPT = join(ROOT, '..', 'shared', 'scripts', 'pg-test-server');
const PG_DIR = '/tmp/vggface-bench-pg';

interface Embedded {
  buildMs: number;
  bytes: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  correct: number;
  queries: number;
}
interface Loaded {
  /** When it was loaded (a reused gallery keeps its figures). */
  when?: string;
  loadPeakRss?: number;
  loadMs: number;
  fitIndexMs: number;
  indexMs: number;
  size: number;
  description: string;
}
interface Queried {
  size: number;
  openMs: number;
  rssAfterOpen: number;
  rssAfterApproximate: number;
  approx: {
    candidates: number;
    p50Ms: number;
    p99Ms: number;
    recallAt10: number;
    identityRecallAt10: number;
    top1Exact: number;
    top1Identity: number;
  }[];
  exact?: { p50Ms: number; queries: number; top1Exact: number };
  server?: ServerFacts;
}

interface Candidates {
  size: number;
  queries: number;
  results: { method: string; kept?: number; recall: Record<number, number> }[];
}

/** The largest peak RSS (VmHWM) of this machine's postgres processes: the server side of a local server. */
function postgresPeakRss(): number {
  let most = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (!/^Name:\s+postgres/m.test(status)) continue;
      const kb = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      most = Math.max(most, kb * 1024);
    } catch {
      // a process that ended meanwhile
    }
  }
  return most;
}

/**
 * $VGGFACE_BENCH_PG as it is configured, or a throwaway server of ../shared/scripts/pg-test-server (stopped at the
 * end) given the shared_buffers a deployment would have: a quarter of RAM, at most 8 GiB. On PostgreSQL's default
 * 128 MB the 1.3 GiB HNSW index of a million faces is read from the OS on every walk (p50 98 ms against 54 ms with
 * 3 GB, BENCHMARKS.md "Gallery at scale").
 */
export async function benchServer(log: (m: string) => void): Promise<{ url: string; stop: () => void }> {
  const given = envValue('benchPg');
  if (given) return { url: given, stop: () => {} };
  log('starting a PostgreSQL server (pg-test-server) for the benchmark');
  const start = (): string => {
    const r = spawnSync(PG_SCRIPT, ['start', '55499', PG_DIR], { encoding: 'utf8' });
    const url = r.stdout.trim().split('\n').pop() ?? '';
    if (r.status !== 0 || !/^postgres/.test(url)) throw new Error(`pg-test-server failed: ${r.stderr || r.stdout}`);
    return url;
  };
  const stop = () => void spawnSync(PG_SCRIPT, ['stop', PG_DIR], { stdio: 'ignore' });
  const url = start();
  const wantMb = Math.min(8192, Math.floor(totalmem() / 4 / 2 ** 20));
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  let haveMb: number;
  try {
    // shared_buffers counts 8 kB blocks.
    const r = await c.query<{ mb: string }>(
      `SELECT setting::bigint * 8 / 1024 AS mb FROM pg_settings WHERE name = 'shared_buffers'`,
    );
    haveMb = Number(r.rows[0].mb);
    if (haveMb < wantMb) await c.query(`ALTER SYSTEM SET shared_buffers = '${wantMb}MB'`);
  } finally {
    await c.end();
  }
  if (haveMb >= wantMb) return { url, stop };
  log(`setting the benchmark server's shared_buffers to ${wantMb} MB (was ${haveMb} MB); restarting it`);
  stop();
  return { url: start(), stop };
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

async function databaseExists(url: string, db: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [db])).rows.length === 1;
  } finally {
    await c.end();
  }
}

async function admin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export const searchSection: Section = {
  name: 'search',
  title:
    'Gallery at scale: approximate search on PostgreSQL + pgvector and in the embedded gallery, against exact search',
  async run(ctx) {
    mkdirSync(WORK_DIR, { recursive: true });
    const lines: string[] = [];
    const runs: [ScaleSetName, number][] = ctx.quick
      ? [
          ['generated', 5_000],
          ['isotropic', 5_000],
        ]
      : [
          ['augmented', 0],
          ['generated', 100_000],
          ['generated', 1_000_000],
          ['isotropic', 100_000],
        ];
    // 30: the embedded gallery's default, 50: PostgreSQL's (gallery/approximate.ts DEFAULT_CANDIDATES).
    const candidates = [30, 50, 200, 1000];
    const queries = ctx.quick ? 20 : 200;
    const components = 256;
    lines.push(
      "Approximate search: each face's projection on the first 256 principal " +
        'directions of a 20,000-face sample (fitted when the',
      `index is built), candidates from those (PostgreSQL: HNSW over the first ${WALK_COMPONENTS} components as ` +
        `\`halfvec\`, m = ${HNSW_BUILD.m}, ef_construction ${HNSW_BUILD.ef_construction}, ` +
        `ef_search = ${efSearch(30)} up to ` +
        `${MIN_EF_SEARCH / EF_SEARCH_PER_CANDIDATE} candidates, ${EF_SEARCH_PER_CANDIDATE} per candidate beyond, ` +
        'at most 1000, its rows re-ranked on all components;',
      'embedded: every projection in memory, scored on ONNX Runtime), then the ' +
        'candidates re-ranked by their exact 4096-d distance.',
      `k = 10, cosine; ${queries} queries, each a new face of a gallery identity. ` +
        'Faces R@10 = share of the exact 10 nearest faces found',
      '(`nearestFaces`, the usual ANN recall); identities R@10 = share of the ' +
        'exact top-10 identities found by `search` (each by its',
      'best face; with hundreds of faces per person, as in the augmented set, ' +
        'the candidates fill with mates and this stays low by',
      'construction); "top-1 = exact": the best identity is the exact search\'s; ' +
        '"top-1 right": it is the query\'s identity. Exact answers are',
      'computed by the benchmark over every face (ONNX Runtime products), so they need no exact search of the store.',
      'Load: the first 20,000 faces, the index built on them, then the rest, each ' +
        'face projected on the way in (PostgreSQL: multi-row',
      'INSERTs through `load()`, the HNSW index dropped and built once at the end). Client RSS: the searching ' +
        'process, after the approximate searches (and its peak, exact searches included).',
      'PostgreSQL: $VGGFACE_BENCH_PG as configured, or pg-test-server with shared_buffers at a quarter ' +
        'of RAM (at most 8 GiB); the',
      'HNSW index is loaded with pg_prewarm before the searches where the extension can be created (column "server").',
      '',
    );
    const server = await benchServer(ctx.log);
    const descriptions = new Map<string, string>();
    try {
      lines.push(
        '| set | store | faces | load s (when) | index s | open s | candidates: p50 / p99 ms, ' +
          'faces R@10, identities R@10, top-1 = exact, top-1 right | exact p50 ms | client RSS: ' +
          'approximate (peak with exact) | server | sizes |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      );
      for (const [set, size] of runs) {
        for (const store of ['postgres', 'sqlite'] as const) {
          const tag = `${set}-${size}-${store}${ctx.quick ? '-quick' : ''}`;
          const truthPath = join(WORK_DIR, `scale-${tag}-truth`);
          const loadPath = join(WORK_DIR, `scale-${tag}.load.json`);
          const db = `bench_${set}_${size}${ctx.quick ? '_quick' : ''}`;
          const location = store === 'sqlite' ? join(WORK_DIR, `scale-${tag}.db`) : withDatabase(server.url, db);
          // A loaded gallery is kept in .bench (or its database) with its load figures, and reused by the next run: a
          // million faces take the better part of an hour to load on 2 cores. Delete .bench/scale-* to load again.
          let loaded: Loaded;
          if (
            existsSync(loadPath) &&
            existsSync(`${truthPath}.json`) &&
            (store === 'sqlite' ? existsSync(location) : await databaseExists(server.url, db))
          ) {
            loaded = JSON.parse(readFileSync(loadPath, 'utf8')) as Loaded;
            ctx.log(`scale: ${tag}: reusing the gallery loaded ${loaded.when}`);
          } else {
            if (store === 'sqlite')
              for (const f of [location, `${location}-wal`, `${location}-shm`]) rmSync(f, { force: true });
            else {
              await admin(server.url, `DROP DATABASE IF EXISTS ${db}`);
              await admin(server.url, `CREATE DATABASE ${db}`);
              await admin(location, 'CREATE EXTENSION IF NOT EXISTS vector');
            }
            ctx.log(`scale: ${tag}: loading`);
            const r = await runTask<Loaded>('search-scale-load', {
              store,
              set,
              size,
              components,
              queries,
              fit: 20_000,
              location,
              truthPath,
            });
            loaded = {
              ...r.result,
              when: new Date().toISOString().slice(0, 16).replace('T', ' '),
              loadPeakRss: r.maxRss,
            };
            writeFileSync(loadPath, JSON.stringify(loaded));
          }
          descriptions.set(set, loaded.description);
          ctx.log(`scale: ${tag}: searching`);
          // Exact search: a scan of every row (PostgreSQL), or every descriptor in memory (SQLite: 16 GiB at 1M).
          const exactFits = store === 'postgres' || loaded.size * DIM * 4 + 4 * GiB < freemem();
          const q = await runTask<Queried>('search-scale-query', {
            store,
            location,
            truthPath,
            candidates,
            exactQueries: exactFits ? (loaded.size >= 1_000_000 ? 5 : 20) : 0,
          });
          const r = q.result;
          const approx = r.approx
            .map(
              (x) =>
                `${x.candidates}: ${x.p50Ms.toFixed(1)} ` +
                `/ ${x.p99Ms.toFixed(1)}, ${pct(x.recallAt10)}, ${pct(x.identityRecallAt10)}, ` +
                `${pct(x.top1Exact)}, ${pct(x.top1Identity)}`,
            )
            .join('; ');
          const exact = r.exact
            ? `${r.exact.p50Ms.toFixed(0)} (${r.exact.queries} queries)`
            : 'not run: the exact index needs the descriptors in memory';
          const serverRss =
            store === 'postgres' && r.server
              ? `peak ${mb(postgresPeakRss())}; shared_buffers ${r.server.sharedBuffers}, ${r.server.hugePages}, ` +
                r.server.prewarm
              : '';
          const sizes = r.server
            ? `faces ${mb(r.server.facesBytes)}, ` +
              `projections ${mb(r.server.projectedBytes)}, HNSW ${mb(r.server.indexBytes)}`
            : `file ${mb(statSync(location).size)}`;
          lines.push(
            `| ${set} | ${store === 'postgres' ? 'PostgreSQL' : 'SQLite'} | ${r.size.toLocaleString('en-US')} ` +
              `| ${(loaded.loadMs / 1000).toFixed(0)} (${loaded.when}) ` +
              `| ${((loaded.fitIndexMs + loaded.indexMs) / 1000).toFixed(0)} | ${(r.openMs / 1000).toFixed(1)} ` +
              `| ${approx} | ${exact} | ${mb(r.rssAfterApproximate)} (${mb(q.maxRss)}) | ${serverRss} | ${sizes} |`,
          );
        }
      }
    } finally {
      server.stop();
    }
    // Which candidates: each generator's recall by brute force over the set in memory (cached in .bench like the
    // loads).
    lines.push(
      '',
      'Which candidates to re-rank (bench task search-candidates): recall@10 ' +
        '(faces) of each candidate generator by brute force over the',
      'set in memory, no index, so only the representation is measured; the ' +
        'candidates re-ranked by their exact distance. "Kept": share',
      'of the variance the projection keeps (fitted on the first 20,000 faces).',
      '',
      '| set | faces | queries | candidates by | kept | recall@10 with 50 / 200 / 1000 candidates |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    const candidateRuns: [ScaleSetName, number][] = ctx.quick
      ? [['generated', 5_000]]
      : [
          ['augmented', 0],
          ['generated', 100_000],
          ['isotropic', 100_000],
        ];
    for (const [set, size] of candidateRuns) {
      const cache = join(WORK_DIR, `candidates-${set}-${size}${ctx.quick ? '-quick' : ''}.json`);
      let c: Candidates;
      if (existsSync(cache)) c = JSON.parse(readFileSync(cache, 'utf8')) as Candidates;
      else {
        ctx.log(`candidates: ${set} ${size}`);
        c = (
          await runTask<Candidates>('search-candidates', {
            set,
            size,
            queries: ctx.quick ? 10 : 30,
            candidates: [50, 200, 1000],
            components: [64, 128, 256, 512],
            fit: 20_000,
          })
        ).result;
        writeFileSync(cache, JSON.stringify(c));
      }
      for (const m of c.results) {
        lines.push(
          `| ${set} | ${c.size.toLocaleString('en-US')} | ${c.queries} | ${m.method} ` +
            `| ${m.kept === undefined ? '' : pct(m.kept)} ` +
            `| ${[50, 200, 1000].map((k) => pct(m.recall[k])).join(' / ')} |`,
        );
      }
    }

    lines.push('', 'The sets:');
    for (const [set, d] of descriptions) lines.push(`- ${set}: ${d}`);

    // The reference: exact embedded search, every descriptor in memory.
    lines.push(
      '',
      'Exact embedded search (the reference): isotropic synthetic descriptors, ' +
        'every one in memory (ONNX Runtime dot products, then exact',
      're-ranking of the rows that can still win); latency per query, the index already in memory.',
      '',
      '| store | faces | memory | median ms | p90 ms | top-1 identity correct | peak RSS |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    const sizes = ctx.quick ? [10_000] : [100_000, 1_000_000];
    for (const size of sizes) {
      for (const precision of ['fp32', 'fp16'] as const) {
        const need = size * DIM * (precision === 'fp16' ? 2 : 4);
        const blocks = Math.ceil(size / 65_536) * 65_536 * DIM * (precision === 'fp16' ? 2 : 4);
        if (blocks + 4 * GiB > freemem()) {
          lines.push(
            `| embedded exact ${precision} | ${size.toLocaleString('en-US')} ` +
              `| ${(need / GiB).toFixed(1)} GiB | not run: needs ${(blocks / GiB).toFixed(1)} GiB ` +
              `+ 4 GiB spare, ${(freemem() / GiB).toFixed(1)} GiB free now | | | |`,
          );
          continue;
        }
        ctx.log(`embedded exact ${precision} ${size}`);
        const r = await runTask<Embedded>('search-embedded', { size, precision, dim: DIM, queries: 30 });
        const e = r.result;
        lines.push(
          `| embedded exact ${precision} | ${size.toLocaleString('en-US')} | ${mb(e.bytes)} ` +
            `| ${e.medianMs.toFixed(1)} | ${e.p90Ms.toFixed(1)} | ${e.correct}/${e.queries} | ${mb(r.maxRss)} |`,
        );
      }
    }
    return lines.join('\n');
  },
};
