// @tags: postgres
/**
 * The queue under faults, on a real PostgreSQL: a worker killed (SIGKILL) in the middle of a batch while two others
 * work on, and the PostgreSQL server restarted in the middle of a run. Every photo must end up stored exactly once,
 * with the descriptors `describe` gives for it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { runCli } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import {
  CliProcess,
  facePhotos,
  newDatabase,
  OwnServer,
  stopTestServer,
  testServer,
  waitUntil,
} from './queue-helpers.js';

process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;
delete process.env.VGGFACE_WEIGHTS;
const W = TINY_CAFFEMODEL;
const PHOTOS = facePhotos();

let serverUrl: string;
/** describe's JSON lines for all the photos, the reference every run's export must equal. */
let expected: Buffer;
let list: string;

const dir = mkdtempSync(join(tmpdir(), 'vggface-queue-faults-'));

before(async () => {
  serverUrl = (await testServer()).url;
});
after(async () => {
  await stopTestServer();
  rmSync(dir, { recursive: true, force: true });
});

async function reference(): Promise<void> {
  if (expected) return;
  list = join(dir, 'photos.txt');
  writeFileSync(list, PHOTOS.join('\n') + '\n');
  const out = join(dir, 'describe.jsonl');
  const r = await runCli(['describe', '-w', W, '--list', list, '-o', out, '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  expected = readFileSync(out);
}

async function client(t: { after(fn: () => Promise<void>): void }, db: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db });
  c.on('error', () => {});
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  return c;
}

const workerArgs = (db: string) => [
  'worker',
  '--db',
  db,
  '-w',
  W,
  '--until-done',
  '--poll',
  '0.5',
  '--threads',
  '1',
  '--maintenance-interval',
  '1',
];

async function submit(db: string, args: string[]): Promise<string> {
  const r = await runCli(['queue', 'submit', '--db', db, '--list', list, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/** Every photo stored once, in submission order, and the export equal to describe's output. */
async function assertExactlyOnce(c: pg.Client, db: string, run: string): Promise<void> {
  const rows = (
    await c.query<{ reference: string; idx: number; status: string }>(
      'SELECT reference, idx, status FROM vggface_queue_results WHERE run = $1 ORDER BY idx',
      [run],
    )
  ).rows;
  assert.deepEqual(
    rows.map((r) => r.reference),
    PHOTOS,
  );
  assert.deepEqual(
    rows.map((r) => r.idx),
    [...PHOTOS.keys()],
  );
  assert.ok(rows.every((r) => r.status === 'described'));
  const e = await runCli(['queue', 'export', run, '--db', db]);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(Buffer.from(e.stdout).equals(expected), 'the export differs from describe');
  const s = await runCli(['queue', 'status', run, '--db', db]);
  const st = JSON.parse(s.stdout);
  assert.deepEqual(
    [st.state, st.done, st.failed, st.pending, st.inFlight, st.dead],
    ['done', PHOTOS.length, 0, 0, 0, 0],
  );
}

test(
  '3 workers, one killed with SIGKILL in the middle of a ' +
    'batch: its batch goes to another, every photo stored once',
  async (t) => {
    await reference();
    const database = await newDatabase(serverUrl);
    t.after(database.drop);
    const db = database.url;
    const run = await submit(db, ['--batch', '4', '-w', W, '--batch-timeout', '3']);
    // Hold the results table: the first worker takes a batch, describes it and waits to store it. Killed then, it
    // has certainly not stored it.
    const lock = await client(t, db);
    const watch = await client(t, db);
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE vggface_queue_results IN EXCLUSIVE MODE');
    const victim = new CliProcess(workerArgs(db));
    const app = `vggface-worker ${hostname()} pid ${victim.pid}`;
    await waitUntil(
      'the first worker waits to store its batch',
      async () =>
        (
          await watch.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [
            app,
          ])
        ).rowCount! >= 1,
    );
    const others = [new CliProcess(workerArgs(db)), new CliProcess(workerArgs(db))];
    await Promise.all(others.map((w) => w.waitFor(/: started \(/)));
    victim.kill('SIGKILL');
    assert.deepEqual(await victim.exited, { code: null, signal: 'SIGKILL' });
    // It describes two batches at a time: one or both were in hand.
    const held = [...victim.stderr.matchAll(/run [0-9a-f]+ batch (\d+): started/g)].map((m) => Number(m[1]));
    assert.ok(held.length >= 1 && held.length <= 2, victim.stderr);
    await lock.query('ROLLBACK');
    const exits = await Promise.all(others.map((w) => w.exited));
    assert.deepEqual(
      exits,
      [
        { code: 0, signal: null },
        { code: 0, signal: null },
      ],
      others.map((w) => w.stderr).join('\n'),
    );
    // The killed worker's batches were done again, each by one of the others, on its second try.
    const c = await client(t, db);
    for (const b of held) {
      const retried = others.filter((w) =>
        new RegExp(`run ${run} batch ${b}: started \\(4 photos, try 2\\)`).test(w.stderr),
      );
      assert.equal(retried.length, 1, others.map((w) => w.stderr).join('\n'));
      const by = (
        await c.query<{ worker: string }>(
          'SELECT DISTINCT worker FROM vggface_queue_results WHERE run = $1 AND batch = $2',
          [run, b],
        )
      ).rows;
      assert.equal(by.length, 1);
      assert.notEqual(by[0].worker, `${hostname()}:${victim.pid}`);
    }
    assert.equal(
      (
        await c.query('SELECT count(*)::int AS n FROM vggface_queue_results WHERE worker = $1', [
          `${hostname()}:${victim.pid}`,
        ])
      ).rows[0].n,
      0,
    );
    await assertExactlyOnce(c, db, run);
  },
);

test('PostgreSQL restarted in the middle of a run: the workers wait for it and the run completes', async (t) => {
  await reference();
  // A server of this test's own: it is stopped and started again.
  const own = await OwnServer.start();
  t.after(() => own.destroy());
  const { url: db } = await newDatabase(own.url);
  // A batch whose fetch committed while its answer was lost in the restart is held by no one: it goes back after its
  // timeout.
  const run = await submit(db, ['--batch', '4', '-w', W, '--batch-timeout', '5']);
  const workers = [new CliProcess(workerArgs(db)), new CliProcess(workerArgs(db))];
  const probe = await client(t, db);
  await waitUntil(
    'a quarter of the photos are stored',
    async () => (await probe.query('SELECT count(*)::int AS n FROM vggface_queue_results')).rows[0].n >= 16,
    120_000,
    200,
  );
  own.stopServer();
  await new Promise((r) => setTimeout(r, 3000));
  own.startServer();
  const exits = await Promise.all(workers.map((w) => w.exited));
  assert.deepEqual(
    exits,
    [
      { code: 0, signal: null },
      { code: 0, signal: null },
    ],
    workers.map((w) => w.stderr).join('\n'),
  );
  assert.ok(
    workers.some((w) => /database unavailable, retrying/.test(w.stderr)),
    workers.map((w) => w.stderr).join('\n'),
  );
  const c = await client(t, db);
  await assertExactlyOnce(c, db, run);
});
