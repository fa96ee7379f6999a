/**
 * The embedded gallery: exact search, fp16, add/search/list/remove, duplicates, errors, a crash mid-batch, two writers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { distance, METRICS } from '../src/distance/distance.js';
import { decodeHalf } from '../src/util/float16.js';
import { BLOCK_ROWS, DescriptorIndex } from '../src/gallery/descriptor-index.js';
import { Gallery } from '../src/gallery/gallery.js';
import { SqliteStore } from '../src/gallery/sqlite-store.js';
import { VggFace } from '../src/vggface.js';
import { CLI, describeLargestFaces, FACES_DIR, GOLDEN_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';
import { xorshift32 } from '../src/util/random.js';

// Whole photos go through face detection: use the shared YuNet copy, never the network.
process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const face = (n: string) => join(FACES_DIR, n);

/** Uniform in [-0.5, 0.5). */
function rng(seed: number): () => number {
  const next = xorshift32(seed);
  return () => next() - 0.5;
}

for (const precision of ['fp32', 'fp16'] as const) {
  test(`exact search (${precision}): the same identities and distances as brute force, across blocks`, async () => {
    const dim = 64;
    const next = rng(precision === 'fp32' ? 3 : 4);
    const index = new DescriptorIndex(dim, precision);
    const stored: { identity: string; v: Float32Array }[] = [];
    const n = BLOCK_ROWS + 500; // two blocks
    const centres = Array.from({ length: 50 }, () => Float32Array.from({ length: dim }, next));
    for (let i = 0; i < n; i++) {
      const c = centres[i % 50];
      const v = Float32Array.from(c, (x) => x + 0.3 * next());
      const enc = index.encode(v);
      index.append({ id: i, identity: `p${i % 50}`, source: `f${i}` }, enc);
      stored.push({ identity: `p${i % 50}`, v: enc instanceof Uint16Array ? decodeHalf(enc) : v });
    }
    index.retain((f) => f.identity !== 'p7'); // compaction across blocks
    const kept = stored.filter((s) => s.identity !== 'p7');
    assert.equal(index.size, kept.length);
    try {
      for (const metric of METRICS) {
        for (let q = 0; q < 3; q++) {
          const query = Float32Array.from(centres[(q * 13) % 50], (x) => x + 0.3 * next());
          const best = new Map<string, number>();
          for (const s of kept) {
            const d = distance(query, s.v, metric);
            if (!best.has(s.identity) || d < best.get(s.identity)!) best.set(s.identity, d);
          }
          const expected = [...best.entries()].sort((a, b) => a[1] - b[1]).slice(0, 5);
          const got = await index.search(query, 5, metric);
          assert.deepEqual(
            got.map((g) => g.identity),
            expected.map((e) => e[0]),
            `${metric} query ${q}`,
          );
          got.forEach((g, i) =>
            assert.ok(Math.abs(g.distance - expected[i][1]) < 1e-9, `${metric}: ${g.distance} vs ${expected[i][1]}`),
          );
        }
      }
    } finally {
      await index.close();
    }
  });
}

test('gallery library API: add, duplicates, search with unknown, list, remove, model binding', async (t) => {
  const dir = tempDir(t);
  const cacheDir = tempDir(t);
  const db = join(dir, 'g.db');
  const model = await VggFace.load({ weights: WEIGHTS, cacheDir });
  const gallery = await Gallery.open(model, { db, create: true });
  try {
    const added = await gallery.add('alice', [face('img1.jpg'), face('img2.jpg'), face('img1.jpg')]);
    assert.deepEqual(
      added.map((a) => a.status),
      ['added', 'added', 'duplicate'],
    );
    const bob = await gallery.add('bob', [face('img3.jpg'), face('img2.jpg'), join(dir, 'nope.jpg')]);
    assert.deepEqual(
      bob.map((a) => [a.status, a.identity]),
      [
        ['added', undefined],
        ['duplicate', 'alice'],
        ['failed', undefined],
      ],
    );
    assert.match(bob[2].error!.message, /nope\.jpg: no such file or directory/);
    assert.deepEqual(await gallery.list(), [
      { identity: 'alice', faces: 2 },
      { identity: 'bob', faces: 1 },
    ]);
    const [q, a1, a2, b1] = await describeLargestFaces(model, [
      face('img4.jpg'),
      face('img1.jpg'),
      face('img2.jpg'),
      face('img3.jpg'),
    ]);
    const dAlice = Math.min(distance(q, a1), distance(q, a2));
    const dBob = distance(q, b1);
    const res = await gallery.search(face('img4.jpg'), { k: 5, threshold: Math.min(dAlice, dBob) + 1e-6 });
    const order = dAlice < dBob ? ['alice', 'bob'] : ['bob', 'alice'];
    assert.deepEqual(
      res.matches.map((m) => m.identity),
      order,
    );
    assert.equal(res.identity, order[0]);
    assert.ok(Math.abs(res.matches.find((m) => m.identity === 'alice')!.distance - dAlice) < 1e-6);
    const none = await gallery.search(face('img4.jpg'), { k: 1, threshold: Math.min(dAlice, dBob) - 1e-3 });
    assert.equal(none.identity, 'unknown');
    assert.equal(none.matches.length, 1);
    // No match under the threshold still says how near the nearest face is: the best match's distance, not NaN.
    assert.ok(Math.abs(none.distance - Math.min(dAlice, dBob)) < 1e-6, `${none.distance}`);
    assert.equal(none.distance, none.matches[0].distance);
    assert.equal(res.distance, res.matches[0].distance);
    // An approximate index that comes back without a candidate (made to here) leaves the nearest face to the exact
    // search, so the result still has its distance.
    const store = gallery.store;
    const realSearch = store.search.bind(store);
    store.search = async (query, o) => (o.approximate ? [] : realSearch(query, o));
    const approx = await gallery.search(face('img4.jpg'), {
      k: 2,
      threshold: Math.min(dAlice, dBob) + 1e-6,
      approximate: true,
    });
    store.search = realSearch;
    assert.deepEqual(
      approx.matches.map((m) => m.identity),
      order,
    );
    assert.equal(approx.identity, order[0]);
    assert.ok(Math.abs(approx.distance - Math.min(dAlice, dBob)) < 1e-6, `${approx.distance}`);
    assert.equal(await gallery.remove('bob'), 1);
    await assert.rejects(gallery.remove('bob'), /no identity "bob" in the gallery/);
    await assert.rejects(gallery.add('unknown', [face('img5.jpg')]), /a name other than "unknown"/);
  } finally {
    await gallery.close();
    await model.close();
  }
  // The same gallery with another model (deepface preprocessing) is refused.
  const other = await VggFace.load({ weights: WEIGHTS, cacheDir, preprocessing: 'deepface' });
  try {
    await assert.rejects(
      Gallery.open(other, { db }),
      // line-width: regex
      /this gallery holds descriptors of model VGG_FACE\.caffemodel .*descriptors of different models cannot be compared/,
    );
  } finally {
    await other.close();
  }
});

test('gallery CLI: add/search/list/remove on SQLite and fp16, with the errors named', async (t) => {
  const dir = tempDir(t);
  const cache = tempDir(t);
  const common = ['-w', WEIGHTS, '--cache-dir', cache];
  for (const precision of ['fp32', 'fp16']) {
    const db = join(dir, `${precision}.db`);
    const add = await runCli([
      'gallery',
      'add',
      '--id',
      'alice',
      face('img1.jpg'),
      face('img2.jpg'),
      face('img1.jpg'),
      '--db',
      db,
      '--storage',
      precision,
      ...common,
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.deepEqual(
      jsonLines(add.stdout).map((l) => l.status),
      ['added', 'added', 'duplicate'],
    );
    assert.equal((await runCli(['gallery', 'add', '--id', 'bob', face('img3.jpg'), '--db', db, ...common])).code, 0);
    const list = await runCli(['gallery', 'list', '--db', db]);
    assert.deepEqual(jsonLines(list.stdout), [
      { identity: 'alice', faces: 2 },
      { identity: 'bob', faces: 1 },
    ]);
    const s = await runCli([
      'gallery',
      'search',
      face('img1.jpg'),
      '--db',
      db,
      '-k',
      '2',
      '--threshold',
      '0.001',
      ...common,
    ]);
    assert.equal(s.code, 0, s.stderr);
    const hit = JSON.parse(s.stdout);
    assert.equal(hit.identity, 'alice');
    assert.ok(hit.distance < (precision === 'fp16' ? 1e-3 : 1e-6), `${precision}: ${hit.distance}`);
    assert.deepEqual(
      hit.matches.map((m: { identity: string }) => m.identity),
      ['alice', 'bob'],
    );
    const stored = new Database(db, { readonly: true });
    const bytes = stored.prepare('SELECT length(descriptor) FROM faces LIMIT 1').pluck().get();
    stored.close();
    assert.equal(bytes, 32 * (precision === 'fp16' ? 2 : 4));
    const rm = await runCli(['gallery', 'remove', 'alice', '--db', db]);
    assert.deepEqual(JSON.parse(rm.stdout), { identity: 'alice', removed: 2 });
  }
  const db = join(dir, 'fp32.db');
  const unknown = await runCli(['gallery', 'remove', 'carol', '--db', db]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /fp32\.db: no identity "carol" in the gallery/);
  await runCli(['gallery', 'remove', 'bob', '--db', db]);
  const empty = await runCli(['gallery', 'search', face('img1.jpg'), '--db', db, '--threshold', '0.5', ...common]);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /fp32\.db: the gallery is empty: add faces first with "vggface gallery add"/);
  const missing = await runCli(['gallery', 'list', '--db', join(dir, 'none.db')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /none\.db: no gallery here: add faces first/);
  const foreign = join(dir, 'foreign.db');
  const f = new Database(foreign);
  f.exec('CREATE TABLE people (name TEXT)');
  f.close();
  const wrong = await runCli(['gallery', 'list', '--db', foreign]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /foreign\.db: not a vggface gallery: a SQLite database with tables people/);
  writeFileSync(
    join(dir, 'text.db'),
    'hello, not sqlite at all, but long enough to have a header of sorts...............................',
  );
  const notDb = await runCli(['gallery', 'list', '--db', join(dir, 'text.db')]);
  assert.equal(notDb.code, 1);
  assert.match(notDb.stderr, /text\.db: cannot open as a SQLite gallery: file is not a database/);
  const newer = join(dir, 'newer.db');
  const n = new Database(newer);
  n.exec(
    `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); ` +
      `CREATE TABLE faces (id INTEGER PRIMARY KEY, identity TEXT, content_hash TEXT, source TEXT, descriptor BLOB);
          INSERT INTO meta VALUES ('application', 'vggface-gallery'), ('schema_version', '99')`,
  );
  n.close();
  const v = await runCli(['gallery', 'list', '--db', newer]);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /gallery schema version 99 is newer than this vggface supports \(2\)/);
  const usage = await runCli(['gallery', 'add', face('img1.jpg'), '--db', db, ...common]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /required option '--id <name>' not specified/);
});

/** Distinct small PNGs (random noise), so each is a new face to the gallery. */
async function noiseImages(dir: string, count: number): Promise<string[]> {
  const next = rng(11);
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const data = Buffer.alloc(32 * 32 * 3);
    for (let k = 0; k < data.length; k++) data[k] = Math.floor((next() + 0.5) * 256);
    const p = join(dir, `n${i}.png`);
    await sharp(data, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(p);
    paths.push(p);
  }
  return paths;
}

function checkGalleryFile(db: string, dim: number): number {
  const d = new Database(db, { readonly: true });
  try {
    assert.equal(d.pragma('integrity_check', { simple: true }), 'ok');
    const rows = d.prepare('SELECT length(descriptor) AS n, count(*) AS c FROM faces GROUP BY n').all() as {
      n: number;
      c: number;
    }[];
    for (const r of rows) assert.equal(r.n, dim * 4, 'every stored descriptor is whole');
    return rows.reduce((s, r) => s + r.c, 0);
  } finally {
    d.close();
  }
}

test('a process killed in the middle of adding keeps every committed batch and nothing half-written', async (t) => {
  const dir = tempDir(t);
  const cache = tempDir(t);
  const images = await noiseImages(dir, 240);
  const db = join(dir, 'crash.db');
  const args = [
    'gallery',
    'add',
    '--id',
    'noise',
    ...images,
    '--db',
    db,
    '--batch',
    '4',
    '--detector',
    'none',
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
  ];
  await runCli([
    'gallery',
    'add',
    '--id',
    'seed',
    face('img1.jpg'),
    '--db',
    db,
    '--detector',
    'none',
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
  ]); // converts the model once
  const child = spawn(process.execPath, [CLI, ...args], { stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  // Kill as soon as some batches are committed (a reader sees them through the WAL).
  const reader = new Database(db, { readonly: true });
  let seen = 0;
  for (let i = 0; i < 2000 && seen < 9; i++) {
    await new Promise((r) => setTimeout(r, 5));
    seen = reader.prepare(`SELECT count(*) FROM faces WHERE identity = 'noise'`).pluck().get() as number;
  }
  child.kill('SIGKILL');
  await exited;
  reader.close();
  const total = checkGalleryFile(db, 32);
  const noise = total - 1;
  assert.ok(noise >= 8 && noise < 240, `killed mid-way: ${noise} of 240 committed`);
  assert.equal(noise % 4, 0, `whole batches only: ${noise}`);
  // Adding the same images again stores only the missing ones.
  const again = await runCli(args);
  assert.equal(again.code, 0, again.stderr);
  const statuses = jsonLines<{ status: string }>(again.stdout).map((l) => l.status);
  assert.equal(statuses.filter((s) => s === 'duplicate').length, noise);
  assert.equal(checkGalleryFile(db, 32), 241);
});

test('two processes adding at once: every face stored once, the file intact', async (t) => {
  const dir = tempDir(t);
  const cache = tempDir(t);
  const images = await noiseImages(dir, 60);
  const db = join(dir, 'two.db');
  await runCli([
    'gallery',
    'add',
    '--id',
    'seed',
    face('img1.jpg'),
    '--db',
    db,
    '--detector',
    'none',
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
  ]);
  // Overlapping sets: 0-39 and 20-59.
  const [a, b] = await Promise.all([
    runCli([
      'gallery',
      'add',
      '--id',
      'x',
      ...images.slice(0, 40),
      '--db',
      db,
      '--batch',
      '2',
      '--detector',
      'none',
      '-w',
      WEIGHTS,
      '--cache-dir',
      cache,
    ]),
    runCli([
      'gallery',
      'add',
      '--id',
      'x',
      ...images.slice(20),
      '--db',
      db,
      '--batch',
      '2',
      '--detector',
      'none',
      '-w',
      WEIGHTS,
      '--cache-dir',
      cache,
    ]),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const added = [...jsonLines<{ status: string }>(a.stdout), ...jsonLines<{ status: string }>(b.stdout)].filter(
    (l) => l.status === 'added',
  ).length;
  assert.equal(added, 60);
  assert.equal(checkGalleryFile(db, 32), 61);
  const store = await SqliteStore.open(db, { create: false });
  try {
    assert.deepEqual(await store.list(), [
      { identity: 'seed', faces: 1 },
      { identity: 'x', faces: 60 },
    ]);
  } finally {
    await store.close();
  }
});
