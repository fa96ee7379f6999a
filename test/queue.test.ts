// @tags: postgres
/**
 * Bulk extraction on the job queue (pg-boss on a real PostgreSQL), through the CLI as users run it: submit, one
 * worker or several, status, export, retry; bad references, URLs, a worker with another model, SIGTERM.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import sharp from 'sharp';
import { sha256 } from '../src/util/hash.js';
import { FACES_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { expectedFaces, TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import { CliProcess, facePhotos, newDatabase, stopTestServer, testServer, waitUntil } from './queue-helpers.js';

process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;
delete process.env.VGGFACE_WEIGHTS;
const W = TINY_CAFFEMODEL;
const face = (n: string) => join(FACES_DIR, n);

let serverUrl: string;
before(async () => {
  serverUrl = (await testServer()).url;
});
after(stopTestServer);

async function database(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const db = await newDatabase(serverUrl);
  t.after(db.drop);
  return db.url;
}

async function submit(db: string, args: string[], input?: string): Promise<string> {
  const r = await runCli(['queue', 'submit', '--db', db, ...args], { input });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[0-9a-f]{10}\n$/);
  return r.stdout.trim();
}

async function status(db: string, run: string): Promise<Record<string, unknown>> {
  const r = await runCli(['queue', 'status', run, '--db', db]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

async function work(db: string, args: string[] = []): Promise<{ code: number; stderr: string }> {
  const r = await runCli(['worker', '--db', db, '-w', W, '--until-done', '--poll', '0.5', '--threads', '1', ...args]);
  return { code: r.code, stderr: r.stderr };
}

/** A client of the test's database (ended before the database is dropped, whose FORCE would end it anyway). */
async function client(t: { after(fn: () => Promise<void>): void }, db: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db });
  c.on('error', () => {});
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  return c;
}

const workerApp = (pid: number) => `vggface-worker ${hostname()} pid ${pid}`;

test('submit, status, export and retry refuse what they cannot do, with clear messages', async (t) => {
  const db = await database(t);
  const dir = tempDir(t);
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, '\n# nothing\n');
  let r = await runCli(['queue', 'submit', '--db', db, '--list', empty]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `vggface: nothing to submit: ${empty} lists no photos\n`);
  r = await runCli(['queue', 'submit', '--db', db, '-'], { input: '' });
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'vggface: nothing to submit: standard input lists no photos\n');
  r = await runCli(['queue', 'submit', '--db', db, dir]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `vggface: no images found in ${dir}\n`);
  r = await runCli(['queue', 'submit', '--db', db, 's3://bucket/a.jpg']);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'vggface: s3://bucket/a.jpg: s3:// references are not supported (use ' +
      'a path every worker sees, or an http(s) URL)\n',
  );
  r = await runCli(['queue', 'submit', face('img1.jpg')], { env: { VGGFACE_QUEUE_DB: '' } });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'vggface: --db URL is required (or set VGGFACE_QUEUE_DB): the PostgreSQL server the queue lives in\n',
  );
  r = await runCli(['queue', 'submit', '--db', db, '--into', 'gallery', face('img1.jpg')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'vggface: --into gallery needs --identity-from dir|csv:FILE: who each photo shows\n');

  for (const cmd of [
    ['status', 'f00f00f00f'],
    ['export', 'f00f00f00f'],
    ['retry', 'f00f00f00f'],
  ]) {
    r = await runCli(['queue', ...cmd, '--db', db]);
    assert.equal(r.code, 1, cmd.join(' '));
    assert.equal(
      r.stderr,
      'vggface: unknown run "f00f00f00f": this database has no runs (submit one with vggface queue submit)\n',
      cmd.join(' '),
    );
  }
  r = await runCli(['queue', 'status', '--db', db]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
  const run = await submit(db, [face('img1.jpg')]);
  r = await runCli(['queue', 'status', 'f00f00f00f', '--db', db]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `vggface: unknown run "f00f00f00f": the latest runs are ${run}\n`);
  r = await runCli(['queue', 'export', run, '--db', db]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `vggface: run ${run} is not finished: 1 pending, 0 in flight, 0 in dead ` +
      'batches (pass --partial to export the 0 photos done)\n',
  );
  r = await runCli(['queue', 'status', run, '--db', 'postgres://nobody@127.0.0.1:1/none']);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    'vggface: cannot connect to postgres://nobody@127.0.0.1:1/none: ' +
      'connection refused (is PostgreSQL running there?)\n',
  );
});

test(
  'one worker: photos described exactly as describe does, bad references ' +
    'recorded with their reasons, export and retry',
  async (t) => {
    const db = await database(t);
    const dir = tempDir(t);
    const blank = join(dir, 'blank.png');
    await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 90, g: 140, b: 220 } } })
      .png()
      .toFile(blank);
    const photos = facePhotos().slice(0, 10);
    const missing = join(dir, 'missing.jpg');
    const notImage = join(FACES_DIR, 'master.csv');
    const refs = [
      ...photos.slice(0, 3),
      missing,
      ...photos.slice(3, 7),
      notImage,
      blank,
      ...photos.slice(7),
      photos[0],
    ];
    const list = join(dir, 'list.txt');
    writeFileSync(list, refs.join('\n') + '\n');
    const unique = join(dir, 'unique.txt'); // describe does a repeated photo twice, the queue once
    writeFileSync(unique, refs.slice(0, 13).join('\n') + '\n');
    const sub = await runCli(['queue', 'submit', '--db', db, '--list', list, '--batch', '4', '-w', W]);
    assert.equal(sub.code, 0, sub.stderr);
    const run = sub.stdout.trim();
    assert.equal(sub.stderr, `vggface: run ${run}: 13 photos queued in 4 batches (1 repeated references dropped)\n`);

    const before = await status(db, run);
    assert.deepEqual(
      {
        state: before.state,
        total: before.total,
        done: before.done,
        pending: before.pending,
        inFlight: before.inFlight,
        batches: before.batches,
      },
      {
        state: 'queued',
        total: 13,
        done: 0,
        pending: 13,
        inFlight: 0,
        batches: { total: 4, queued: 4, inFlight: 0, completed: 0, dead: 0 },
      },
    );

    const w = await work(db);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stderr.match(/: started \(/g)?.length, 4);
    assert.match(w.stderr, /stopped after 4 batches \(13 photos stored\)/);

    const s = await status(db, run);
    const faces = photos.reduce((n, p) => n + expectedFaces(p.split('/').pop()!), 0);
    assert.deepEqual(
      { ...s, createdAt: undefined, rate: undefined },
      {
        run,
        createdAt: undefined,
        state: 'done',
        model: s.model,
        into: 'descriptors',
        total: 13,
        done: 11,
        described: 10,
        noFace: 1,
        faces,
        failed: 2,
        pending: 0,
        inFlight: 0,
        dead: 0,
        batches: { total: 4, queued: 0, inFlight: 0, completed: 4, dead: 0 },
        rate: undefined,
        etaSeconds: 0,
        failures: [
          { reason: 'no such file', photos: 1, example: missing },
          { reason: 'not a decodable image (contains unsupported image format)', photos: 1, example: notImage },
        ],
        deadBatches: [],
      },
    );
    assert.match(s.model as string, /^VGG_FACE\.caffemodel \(sha256 [0-9a-f]{12}\.\.\., caffe preprocessing, fp32\)$/);

    // Every reference once, with the sha256 of its content.
    const c = await client(t, db);
    const rows = (
      await c.query<{ reference: string; idx: number; status: string; content_sha256: string | null }>(
        'SELECT reference, idx, status, content_sha256 FROM vggface_queue_results ORDER BY idx',
      )
    ).rows;
    assert.deepEqual(
      rows.map((x) => x.reference),
      refs.slice(0, 13),
    );
    assert.deepEqual(
      rows.map((x) => x.idx),
      [...Array(13).keys()],
    );
    assert.equal(rows[0].content_sha256, sha256(readFileSync(photos[0])));
    assert.equal(rows[3].content_sha256, null);
    assert.deepEqual(
      rows.map((x) => x.status),
      [
        'described',
        'described',
        'described',
        'failed',
        'described',
        'described',
        'described',
        'described',
        'failed',
        'no_face',
        'described',
        'described',
        'described',
      ],
    );

    // The export is what describe writes for the same list, byte for byte, as JSON lines and as a matrix with its
    // index.
    for (const ext of ['jsonl', 'npy']) {
      const q = join(dir, `queue.${ext}`);
      const d = join(dir, `describe.${ext}`);
      const e = await runCli(['queue', 'export', run, '--db', db, '-o', q]);
      assert.equal(e.code, 0, e.stderr);
      assert.equal(
        e.stderr,
        `vggface: run ${run}: exported 11 photos (${faces} rows); 2 failed photos ` +
          `left out (vggface queue status ${run} says why)\n`,
      );
      const ref = await runCli(['describe', '-w', W, '--list', unique, '-o', d, '--threads', '1']);
      assert.equal(ref.code, 1, ref.stderr); // the two bad references
      assert.ok(readFileSync(q).equals(readFileSync(d)), `${ext} differs`);
      if (ext === 'npy')
        assert.ok(readFileSync(`${q}.index.jsonl`).equals(readFileSync(`${d}.index.jsonl`)), 'index differs');
    }
    const again = await runCli(['queue', 'export', run, '--db', db, '-o', join(dir, 'queue.jsonl')]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /queue\.jsonl exists/);

    // retry queues the failed photos again (they fail again, with the same reasons).
    const retry = await runCli(['queue', 'retry', run, '--db', db]);
    assert.equal(retry.code, 0, retry.stderr);
    assert.deepEqual(JSON.parse(retry.stdout), { run, photos: 2, batches: 0 });
    const retried = await status(db, run);
    assert.deepEqual([retried.failed, retried.pending, retried.done, retried.state], [0, 2, 11, 'queued']);
    assert.equal((await work(db)).code, 0);
    const finally_ = await status(db, run);
    assert.deepEqual(
      [finally_.failed, finally_.pending, finally_.done, finally_.state, (finally_.batches as { total: number }).total],
      [2, 0, 11, 'done', 5],
    );
    assert.equal((await c.query('SELECT count(*)::int AS n FROM vggface_queue_results')).rows[0].n, 13);
  },
);

test("a worker with another model than the run's is refused, and writes nothing", async (t) => {
  const db = await database(t);
  const bound = await submit(db, ['-w', W, face('img1.jpg'), face('img2.jpg')]);
  let r = await work(db, ['--preprocessing', 'deepface', '--run', bound]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      `^vggface: run ${bound} is bound to model VGG_FACE\\.caffemodel \\(sha256 ` +
        '[0-9a-f]{12}\\.\\.\\., caffe preprocessing, fp32\\); ' +
        'this worker loaded VGG_FACE\\.caffemodel \\(sha256 ' +
        '[0-9a-f]{12}\\.\\.\\., deepface preprocessing, fp32\\)\\. ' +
        `Start the worker with that run's weights and flags \\(descriptors of different models cannot be mixed\\)\\n$`,
    ),
  );
  r = await work(db, ['--preprocessing', 'deepface']);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(
      "^vggface: this worker's model is .*deepface preprocessing.*, but every open run is " +
        `bound to another: run ${bound}: .*caffe preprocessing.*\\n$`,
    ),
  );
  assert.deepEqual([(await status(db, bound)).pending, (await status(db, bound)).done], [2, 0]);

  // A run submitted without weights is bound by its first worker; a later worker with another model is refused.
  const unbound = await submit(db, ['--batch', '1', face('img3.jpg')]);
  assert.equal((await status(db, unbound)).model, null);
  r = await work(db, ['--run', unbound]);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await status(db, unbound)).model as string, /caffe preprocessing, fp32/);
  r = await work(db, ['--precision', 'fp16', '--run', unbound]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    new RegExp(`^vggface: run ${unbound} is bound to model .*fp32\\); this worker loaded .*fp16\\)\\. `),
  );
  const c = await client(t, db);
  assert.equal((await c.query('SELECT count(*)::int AS n FROM vggface_queue_results')).rows[0].n, 1);
});

test(
  'URLs: fetched within limits (size, time, redirects, ' + 'content type, allowed prefixes); failures recorded',
  async (t) => {
    const img1 = readFileSync(face('img1.jpg'));
    const img2 = readFileSync(face('img2.jpg'));
    const server: Server = createServer((req, res) => {
      const url = req.url!;
      if (url === '/ok/img1.jpg') res.writeHead(200, { 'content-type': 'image/jpeg' }).end(img1);
      else if (url === '/ok/img2.jpg' || url === '/denied/img2.jpg')
        res.writeHead(200, { 'content-type': 'image/jpeg' }).end(img2);
      else if (url === '/redirect/one') res.writeHead(302, { location: '/redirect/two' }).end();
      else if (url === '/redirect/two') res.writeHead(301, { location: '/ok/img2.jpg' }).end();
      else if (url === '/redirect/loop') res.writeHead(302, { location: '/redirect/loop' }).end();
      else if (url === '/redirect/out') res.writeHead(302, { location: '/denied/img2.jpg' }).end();
      else if (url === '/ok/page.html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
      else if (url === '/ok/big.jpg')
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': '300000' }).end(Buffer.alloc(300_000));
      else if (url === '/ok/chunked.jpg') {
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        for (let i = 0; i < 30; i++) res.write(Buffer.alloc(10_000));
        res.end();
      } else if (url === '/ok/slow.jpg')
        res.writeHead(200, { 'content-type': 'image/jpeg' }).write(img1.subarray(0, 100)); // never ends
      else res.writeHead(404).end('not found');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const db = await database(t);
    const refs = [
      '/ok/img1.jpg',
      '/redirect/one',
      '/ok/missing.jpg',
      '/ok/page.html',
      '/ok/big.jpg',
      '/ok/chunked.jpg',
      '/redirect/loop',
      '/redirect/out',
      '/denied/img2.jpg',
      '/ok/slow.jpg',
    ].map((p) => base + p);
    const run = await submit(db, ['-', '--batch', '5', '-w', W], refs.join('\n'));
    const w = await work(db, [
      '--allow-url-prefix',
      `${base}/ok/`,
      `${base}/redirect/`,
      '--max-bytes',
      '200000',
      '--max-redirects',
      '3',
      '--fetch-timeout',
      '2',
    ]);
    assert.equal(w.code, 0, w.stderr);
    const c = await client(t, db);
    const rows = (
      await c.query<{ reference: string; status: string; error: string | null; content_sha256: string | null }>(
        'SELECT reference, status, error, content_sha256 FROM vggface_queue_results ORDER BY idx',
      )
    ).rows;
    assert.deepEqual(
      rows.map((r) => [r.reference.slice(base.length), r.status, r.error]),
      [
        ['/ok/img1.jpg', 'described', null],
        ['/redirect/one', 'described', null],
        ['/ok/missing.jpg', 'failed', 'HTTP 404 Not Found'],
        ['/ok/page.html', 'failed', 'content type text/html is not an image'],
        ['/ok/big.jpg', 'failed', '300000 bytes, over the limit of 200000'],
        ['/ok/chunked.jpg', 'failed', 'over the limit of 200000 bytes'],
        ['/redirect/loop', 'failed', 'more than 3 redirects'],
        ['/redirect/out', 'failed', `redirected to ${base}/denied/img2.jpg, which is not under an allowed URL prefix`],
        ['/denied/img2.jpg', 'failed', 'not under an allowed URL prefix (worker --allow-url-prefix)'],
        ['/ok/slow.jpg', 'failed', 'no complete answer within 2 s'],
      ],
    );
    assert.deepEqual([rows[0].content_sha256, rows[1].content_sha256], [sha256(img1), sha256(img2)]);
    // The descriptors are those of the same files read from disk.
    const e = await runCli(['queue', 'export', run, '--db', db]);
    assert.equal(e.code, 0, e.stderr);
    const d = await runCli(['describe', '-w', W, face('img1.jpg'), face('img2.jpg'), '--threads', '1']);
    assert.deepEqual(
      jsonLines(e.stdout).map((l) => [l.face, l.descriptor]),
      jsonLines(d.stdout).map((l) => [l.face, l.descriptor]),
    );
    assert.deepEqual(
      jsonLines(e.stdout).map((l) => l.image),
      [refs[0], refs[1]],
    );
  },
);

test('SIGTERM: the batch in hand is finished, no new one is taken, exit 0', async (t) => {
  const db = await database(t);
  const photos = facePhotos().slice(0, 24);
  const run = await submit(db, ['--batch', '8', '-w', W, ...photos]);
  const w = new CliProcess(['worker', '--db', db, '-w', W, '--threads', '1']);
  await w.waitFor(/batch 0: started/);
  w.kill('SIGTERM');
  const exit = await w.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, w.stderr);
  const started = w.stderr.match(/: started \(/g)?.length ?? 0;
  const done = w.stderr.match(/: done in /g)?.length ?? 0;
  assert.ok(started >= 1);
  assert.equal(done, started, w.stderr);
  assert.match(w.stderr, /SIGTERM: finishing the batches in hand, taking no new one/);
  const s = await status(db, run);
  assert.deepEqual([s.done, s.pending, s.inFlight], [8 * done, 24 - 8 * done, 0]);
});

test(
  'SIGTERM: a batch that cannot finish within --grace is ' + 'given back to the queue, exit 0; the next worker does it',
  async (t) => {
    const db = await database(t);
    const photos = facePhotos().slice(0, 8);
    const run = await submit(db, ['--batch', '8', '-w', W, ...photos]);
    // Hold the results table so the worker's commit waits: its batch is in hand and cannot finish.
    const lock = await client(t, db);
    await lock.query('BEGIN');
    await lock.query('LOCK TABLE vggface_queue_results IN EXCLUSIVE MODE');
    const w = new CliProcess(['worker', '--db', db, '-w', W, '--threads', '1', '--grace', '1']);
    const watch = await client(t, db); // not the lock's: pg_stat_activity is one snapshot per transaction
    await waitUntil(
      'the worker waits on the lock',
      async () =>
        (
          await watch.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [
            workerApp(w.pid),
          ])
        ).rowCount! >= 1,
    );
    w.kill('SIGTERM');
    const exit = await w.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, w.stderr);
    assert.match(w.stderr, new RegExp(`run ${run} batch 0: given back unfinished`));
    await lock.query('ROLLBACK');
    const s = await status(db, run);
    assert.deepEqual([s.done, s.pending, s.inFlight, (s.batches as { queued: number }).queued], [0, 8, 0, 1]);
    const next = await work(db);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual([(await status(db, run)).done, (await status(db, run)).state], [8, 'done']);
  },
);

test(
  'a batch that fails every try is dead, with its last ' + 'error, in status; queue retry gives it another try',
  async (t) => {
    const db = await database(t);
    const photos = facePhotos().slice(0, 8);
    const run = await submit(db, ['--batch', '4', '--retries', '1', '-w', W, ...photos]);
    // Storing the second batch fails (as a full disk would), whoever tries.
    const c = await client(t, db);
    await c.query(
      'CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION ' +
        "'could not extend file: No space left on device (test)'; END $$",
    );
    await c.query(
      'CREATE TRIGGER refuse BEFORE INSERT ON vggface_queue_results FOR EACH ' +
        'ROW WHEN (NEW.batch = 1) EXECUTE FUNCTION refuse()',
    );
    const w = await work(db);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(
      w.stderr.match(
        new RegExp(`run ${run} batch 1: failed: could not extend file: No space left on device \\(test\\)`, 'g'),
      )?.length,
      2,
      w.stderr,
    );
    const s = await status(db, run);
    assert.deepEqual(
      [s.state, s.done, s.pending, s.inFlight, s.dead, s.batches, s.deadBatches],
      [
        'stalled',
        4,
        0,
        0,
        4,
        { total: 2, queued: 0, inFlight: 0, completed: 1, dead: 1 },
        [{ batch: 1, photos: 4, error: 'could not extend file: No space left on device (test)' }],
      ],
    );
    const text = await runCli(['queue', 'status', run, '--db', db, '--json']);
    assert.deepEqual(JSON.parse(text.stdout), { ...s, rate: JSON.parse(text.stdout).rate });
    await c.query('DROP TRIGGER refuse ON vggface_queue_results');
    const retry = await runCli(['queue', 'retry', run, '--db', db]);
    assert.deepEqual(JSON.parse(retry.stdout), { run, photos: 0, batches: 1 });
    assert.equal((await work(db)).code, 0);
    const after = await status(db, run);
    assert.deepEqual([after.state, after.done, after.dead, after.deadBatches], ['done', 8, 0, []]);
  },
);

test(
  '--into gallery: the largest face of each photo added ' + 'under its identity (dir or csv), once however often',
  async (t) => {
    const db = await database(t);
    const dir = tempDir(t);
    const people = join(dir, 'people');
    for (const [who, photo] of [
      ['alice', 'img1.jpg'],
      ['alice', 'img2.jpg'],
      ['bob', 'img3.jpg'],
    ]) {
      mkdirSync(join(people, who), { recursive: true });
      copyFileSync(face(photo), join(people, who, photo));
    }
    mkdirSync(join(people, 'carol'));
    await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 90, g: 140, b: 220 } } })
      .png()
      .toFile(join(people, 'carol', 'blank.png'));
    const run = await submit(db, ['--into', 'gallery', '--identity-from', 'dir', '-w', W, people]);
    const w = await work(db);
    assert.equal(w.code, 0, w.stderr);
    const s = await status(db, run);
    assert.deepEqual(
      [s.into, s.done, s.described, s.noFace, s.faces, s.gallery],
      ['gallery', 4, 3, 1, 3, { added: 3, duplicates: 0 }],
    );
    const list = async () => {
      const r = await runCli(['gallery', 'list', '--db', db]);
      assert.equal(r.code, 0, r.stderr);
      return jsonLines(r.stdout);
    };
    assert.deepEqual(await list(), [
      { identity: 'alice', faces: 2 },
      { identity: 'bob', faces: 1 },
    ]);

    // A CSV (paths relative to its folder); a photo the gallery holds already is not added again.
    const csv = join(dir, 'who.csv');
    writeFileSync(csv, `reference,identity\npeople/alice/img1.jpg,alice\n${face('img4.jpg')},dave\n`);
    const run2 = await submit(db, [
      '--into',
      'gallery',
      '--identity-from',
      `csv:${csv}`,
      '-w',
      W,
      join(people, 'alice', 'img1.jpg'),
      face('img4.jpg'),
    ]);
    assert.equal((await work(db)).code, 0);
    assert.deepEqual((await status(db, run2)).gallery, { added: 1, duplicates: 1 });
    assert.deepEqual(await list(), [
      { identity: 'alice', faces: 2 },
      { identity: 'bob', faces: 1 },
      { identity: 'dave', faces: 1 },
    ]);
    // The stored face is the one verify and gallery add use: img1 finds itself.
    const found = await runCli(['gallery', 'search', face('img1.jpg'), '--db', db, '-w', W, '--threshold', '0.0001']);
    assert.equal(found.code, 0, found.stderr);
    const best = JSON.parse(found.stdout);
    assert.equal(best.identity, 'alice');
    assert.ok(best.distance < 1e-6, String(best.distance));

    const r = await runCli([
      'queue',
      'submit',
      '--db',
      db,
      '--into',
      'gallery',
      '--identity-from',
      `csv:${csv}`,
      face('img5.jpg'),
    ]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `vggface: --identity-from csv:${csv}: 1 photo has no identity, e.g. ${face('img5.jpg')}\n`);
    const m = await runCli([
      'queue',
      'submit',
      '--db',
      db,
      '--into',
      'gallery',
      '--identity-from',
      'dir',
      '--max-faces',
      '2',
      face('img5.jpg'),
    ]);
    assert.equal(m.code, 2);
    assert.equal(m.stderr, 'vggface: --max-faces: a gallery takes the largest face of each photo\n');
  },
);
