/**
 * Issue 13: bulk extraction on the job queue (pg-boss on PostgreSQL), full-size model. What the queue costs per photo
 * against plain `describe`; how 2 workers of 1 thread compare with 1; and the queue's own ceiling (batches per second
 * and descriptor bytes written per second by workers that do no inference), which says how many machines one
 * PostgreSQL feeds.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ROOT, WORK_DIR, type Section, type SectionContext } from '../harness.js';
import { ensureFullCaffemodel } from '../fixtures.js';
import { startBoss, stopBoss } from '../../src/queue/boss.js';
import { openPool, transaction } from '../../src/queue/db.js';
import { ensureSchema, insertResults, type BatchData, type PhotoResult } from '../../src/queue/store.js';
import { submitRun } from '../../src/queue/submit.js';

const SHARED = join(ROOT, '..', 'shared');
const FACES_DIR = join(SHARED, 'data', 'faces');
const DETECTOR = process.env.VGGFACE_DETECTOR_MODEL || join(SHARED, 'models', 'face_detection_yunet_2023mar.onnx');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const DIM = 4096;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** $VGGFACE_TEST_PG_URL, else a server started with ../shared/scripts/pg-test-server (stopped at the end). */
async function postgres(): Promise<{ url: string; stop: () => void }> {
  if (process.env.VGGFACE_TEST_PG_URL) return { url: process.env.VGGFACE_TEST_PG_URL, stop: () => {} };
  const script = join(SHARED, 'scripts', 'pg-test-server');
  const dir = `/tmp/vggface-pg-bench-queue-${process.pid}`;
  const url = execFileSync(script, ['start', String(await freePort()), dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
  return {
    url,
    stop: () => execFileSync('bash', ['-c', `'${script}' stop '${dir}' && rm -rf '${dir}'`], { stdio: 'ignore' }),
  };
}

async function newDatabase(server: string): Promise<string> {
  const name = `vggface_bench_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  const c = new pg.Client({ connectionString: server });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Runs the CLI; resolves with its wall time in ms (rejects on a non-zero exit). `onLine` sees stderr as it comes. */
function cli(args: string[], env: Record<string, string>, onLine?: (line: string) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    let pending = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) onLine?.(l);
    });
    child.on('close', (code) =>
      code === 0 || (args[0] === 'describe' && code === 1)
        ? resolve(performance.now() - start)
        : reject(new Error(`vggface ${args[0]} exited ${code}: ${err.slice(-2000)}`)),
    );
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Workers that do no inference: fetch a batch, store `photos` fake 16 KB descriptors per batch, complete it, repeat.
 */
async function ceiling(
  server: string,
  workers: number,
  batches: number,
  photosPerBatch: number,
): Promise<{ batchesPerSecond: number; photosPerSecond: number; mbPerSecond: number }> {
  const db = await newDatabase(server);
  const refs = Array.from({ length: batches * photosPerBatch }, (_, i) => `/bench/photo-${i}.jpg`);
  const r = await submitRun({
    db,
    references: refs,
    batchSize: photosPerBatch,
    into: 'descriptors',
    settings: { layer: 'fc7', normalize: true, detector: 'none', inferenceBatch: 8 },
    options: { retries: 3, batchTimeoutSeconds: 900 },
  });
  const queue = `vggface-run-${r.run}`;
  const pool = await openPool(db, { applicationName: 'vggface-bench', max: workers + 2 });
  await ensureSchema(pool);
  const boss = await startBoss(db, { applicationName: 'vggface-bench', max: workers + 2 });
  const descriptor = new Float32Array(DIM).map((_, i) => Math.sin(i));
  const start = performance.now();
  let done = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (;;) {
        const [job] = await boss.fetch<BatchData>(queue, { batchSize: 1 });
        if (!job) return;
        const results: PhotoResult[] = job.data.refs.map(([idx, reference]) => ({
          idx,
          reference,
          status: 'described',
          sha256: 'f'.repeat(64),
          descriptors: [descriptor],
        }));
        await transaction(pool, async (client, executor) => {
          await insertResults(client, r.run, job.data.batch, `${hostname()}:bench`, results);
          await boss.complete(queue, job.id, { described: results.length }, { db: executor as never });
        });
        done++;
      }
    }),
  );
  const s = (performance.now() - start) / 1000;
  await stopBoss(boss);
  await pool.end();
  if (done !== batches) throw new Error(`ceiling: ${done} batches done of ${batches}`);
  return {
    batchesPerSecond: batches / s,
    photosPerSecond: (batches * photosPerBatch) / s,
    mbPerSecond: (batches * photosPerBatch * DIM * 4) / 1e6 / s,
  };
}

export const queueSection: Section = {
  name: 'queue',
  title: 'Bulk extraction on the job queue (pg-boss on PostgreSQL): overhead, scaling, ceiling',
  async run(ctx: SectionContext) {
    const rounds = ctx.quick ? 1 : 3;
    const photos = readdirSync(FACES_DIR)
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .map((f) => join(FACES_DIR, f))
      .slice(0, ctx.quick ? 16 : 64);
    const weights = await ensureFullCaffemodel();
    const work = join(WORK_DIR, 'queue');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const list = join(work, 'photos.txt');
    writeFileSync(list, photos.join('\n') + '\n');
    const env = { VGGFACE_CACHE: join(WORK_DIR, 'faces-cache'), VGGFACE_DETECTOR_MODEL: DETECTOR };
    const pgServer = await postgres();
    try {
      ctx.log('converting the model once (not timed)');
      await cli(['describe', '-w', weights, '--threads', '1', photos[0]], env);
      // Model loading (and ONNX Runtime's slow first run) is left out: against describe, each side's time is that
      // of all the photos less that of one photo, scaled back to all, process start to exit; between 1 and 2
      // workers, from the first batch taken to the last one stored.
      const describeMs: number[] = [];
      const queueMs: number[] = [];
      const oneMs: number[] = [];
      const twoMs: number[] = [];
      const oneRate: number[] = [];
      const twoRate: number[] = [];
      const queueRun = async (refs: string, workers: number) => {
        const db = await newDatabase(pgServer.url);
        await cli(['queue', 'submit', '--db', db, '--list', refs, '--batch', '8', '-w', weights], env);
        // Per worker: first batch taken, last batch stored, photos described. A worker that loads its model later
        // than the other starts later; its own span leaves that skew out of the combined rate.
        const spans = new Map<string, { first: number; last: number; photos: number }>();
        const onLine = (l: string) => {
          const id = /^vggface: worker (\S+) slot /.exec(l)?.[1];
          if (!id) return;
          const span = spans.get(id) ?? { first: Infinity, last: 0, photos: 0 };
          spans.set(id, span);
          if (/: started \(/.test(l)) span.first = Math.min(span.first, performance.now());
          const done = /: done in [\d.]+ s: (\d+) described/.exec(l);
          if (done) {
            span.last = performance.now();
            span.photos += Number(done[1]);
          }
        };
        const start = performance.now();
        await Promise.all(
          Array.from({ length: workers }, () =>
            cli(['worker', '--db', db, '-w', weights, '--threads', '1', '--until-done', '--poll', '0.5'], env, onLine),
          ),
        );
        const all = [...spans.values()];
        const first = Math.min(...all.map((x) => x.first));
        const last = Math.max(...all.map((x) => x.last));
        // photos per second, summed over the workers, each over its own span
        const rate = all.reduce((sum, x) => sum + (x.last > x.first ? (x.photos * 1000) / (x.last - x.first) : 0), 0);
        return { wall: performance.now() - start, busy: last - first, rate, workers: all.length };
      };
      const oneList = join(work, 'one.txt');
      writeFileSync(oneList, photos[0] + '\n');
      for (let round = 0; round < rounds; round++) {
        ctx.log(`round ${round + 1}/${rounds}: describe, 1 thread`);
        const all = await cli(
          ['describe', '-w', weights, '--threads', '1', '--list', list, '-o', join(work, `describe-${round}.npy`)],
          env,
        );
        const one = await cli(
          ['describe', '-w', weights, '--threads', '1', photos[0], '-o', join(work, `describe-${round}-one.npy`)],
          env,
        );
        describeMs.push(((all - one) * photos.length) / (photos.length - 1));
        ctx.log(`round ${round + 1}/${rounds}: queue, 1 worker of 1 thread`);
        const q = await queueRun(list, 1);
        const q1 = await queueRun(oneList, 1);
        queueMs.push(((q.wall - q1.wall) * photos.length) / (photos.length - 1));
        oneMs.push(q.busy);
        oneRate.push(q.rate);
        ctx.log(`round ${round + 1}/${rounds}: queue, 2 workers of 1 thread`);
        const q2 = await queueRun(list, 2);
        if (q2.workers !== 2) throw new Error(`2 workers started, but ${q2.workers} took batches`);
        twoMs.push(q2.busy);
        twoRate.push(q2.rate);
      }
      ctx.log('queue ceiling');
      const n = ctx.quick ? 200 : 2000;
      const c1 = await ceiling(pgServer.url, 1, n, 1);
      const c4 = await ceiling(pgServer.url, 4, n, 1);
      const w4 = await ceiling(pgServer.url, 4, ctx.quick ? 50 : 300, 32);
      const d = median(describeMs);
      const q = median(queueMs);
      const q1 = median(oneMs);
      const q2 = median(twoMs);
      const r1 = median(oneRate);
      const r2 = median(twoRate);
      const perPhoto = (q - d) / photos.length;
      const rate1 = photos.length / (q / 1000);
      return [
        `${photos.length} photos of \`../shared/data/faces\`, full-size random weights ` +
          `(fp32), YuNet, batches of 8 photos, medians of ${rounds} round(s);`,
        'model loading and the first inference left out (each side: all photos less one photo, scaled, start to ' +
          `exit). PostgreSQL ${pgServer.url.includes('127.0.0.1') ? 'on this machine' : 'as given'}.`,
        '',
        '| measurement | s | photos/s | time vs describe |',
        '| --- | --- | --- | --- |',
        `| \`describe --threads 1 --list\` | ${(d / 1000).toFixed(1)} ` +
          `| ${(photos.length / (d / 1000)).toFixed(2)} | 1.00 |`,
        `| queue, 1 worker \`--threads 1\` | ${(q / 1000).toFixed(1)} | ${rate1.toFixed(2)} ` +
          `| ${(q / d).toFixed(3)} (${perPhoto >= 0 ? '+' : ''}${perPhoto.toFixed(0)} ms per photo) |`,
        '',
        '| workers (1 inference thread each) | first batch taken to last stored, s | ' +
          'photos/s, each worker over its own span, summed | vs 1 worker |',
        '| --- | --- | --- | --- |',
        `| 1 | ${(q1 / 1000).toFixed(1)} | ${r1.toFixed(2)} | 1.00 |`,
        `| 2 | ${(q2 / 1000).toFixed(1)} | ${r2.toFixed(2)} ` +
          `| ${(r2 / r1).toFixed(2)}x (end to end ${(q1 / q2).toFixed(2)}x) |`,
        '',
        'The queue alone (workers that store a fake 16 KB descriptor per photo and do no inference; each batch is one',
        'fetch and one transaction that inserts its results and completes its job):',
        '',
        '| workers | photos per batch | batches/s | photos/s | descriptor MB/s |',
        '| --- | --- | --- | --- | --- |',
        ...[
          [1, 1, c1],
          [4, 1, c4],
          [4, 32, w4],
        ].map(([w, p, c]) => {
          const r = c as Awaited<ReturnType<typeof ceiling>>;
          return (
            `| ${w} | ${p} | ${r.batchesPerSecond.toFixed(0)} ` +
            `| ${r.photosPerSecond.toFixed(0)} | ${r.mbPerSecond.toFixed(1)} |`
          );
        }),
        '',
        `One worker here describes ${rate1.toFixed(2)} photos/s; ` +
          `at ${w4.photosPerSecond.toFixed(0)} photos/s (batches of 32) this PostgreSQL would feed about ` +
          `${Math.floor(w4.photosPerSecond / rate1)} such workers before the queue, not inference, is the limit.`,
      ].join('\n');
    } finally {
      pgServer.stop();
    }
  },
};
