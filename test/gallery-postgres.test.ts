/**
 * The PostgreSQL + pgvector gallery, over the wire protocol: PGlite (PostgreSQL in WebAssembly) with its pgvector
 * extension, served on a loopback port by @electric-sql/pglite-socket, started here; the CLI connects to it as to
 * any PostgreSQL server.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { distance } from '../src/metrics/distance.js';
import { PostgresStore, redactUrl } from '../src/gallery/postgres-store.js';
import { VggFace } from '../src/vggface.js';
import { describeLargestFaces, FACES_DIR, GOLDEN_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';

// Whole photos go through face detection: use the shared YuNet copy, never the network.
process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const face = (n: string) => join(FACES_DIR, n);

/** PGlite is a single backend session (startup options such as search_path do not apply): one server per database. */
const servers: { db: PGlite; server: PGLiteSocketServer }[] = [];

async function startPostgres(): Promise<{ url: string; db: PGlite }> {
  const db = await PGlite.create({ extensions: { vector } });
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 8 });
  await server.start();
  servers.push({ db, server });
  return { url: `postgres://postgres:secret@${server.getServerConn()}/postgres`, db };
}

after(async () => {
  for (const s of servers) {
    await s.server.stop();
    await s.db.close();
  }
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('postgres gallery from the CLI: schema created, add with duplicates, search exact and approximate, list, remove', async (t) => {
  const { url, db } = await startPostgres();
  const cache = tempDir(t);
  const common = ['-w', WEIGHTS, '--cache-dir', cache, '--db', url];
  const add = await runCli(['gallery', 'add', '--id', 'alice', face('img1.jpg'), face('img2.jpg'), face('img1.jpg'), ...common]);
  assert.equal(add.code, 0, add.stderr);
  assert.deepEqual(jsonLines(add.stdout).map((l) => l.status), ['added', 'added', 'duplicate']);
  assert.equal((await runCli(['gallery', 'add', '--id', 'bob', face('img3.jpg'), face('img2.jpg'), ...common])).code, 0);
  const list = await runCli(['gallery', 'list', '--db', url]);
  assert.deepEqual(jsonLines(list.stdout), [{ identity: 'alice', faces: 2 }, { identity: 'bob', faces: 1 }]);
  const tables = await db.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
  assert.deepEqual(tables.rows.map((r) => r.table_name), ['vggface_faces', 'vggface_meta']);
  const idx = await db.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE indexname = 'vggface_faces_binary_hnsw'`);
  assert.match(idx.rows[0].indexdef, /USING hnsw \(\(\(binary_quantize\(embedding\)\)::bit\(32\)\) bit_hamming_ops\)/);

  const model = await VggFace.load({ weights: WEIGHTS, cacheDir: cache });
  const [q, a1, a2, b1] = await describeLargestFaces(model, [face('img4.jpg'), face('img1.jpg'), face('img2.jpg'), face('img3.jpg')]);
  await model.close();
  const expected = [
    ['alice', Math.min(distance(q, a1), distance(q, a2))],
    ['bob', distance(q, b1)],
  ].sort((x, y) => (x[1] as number) - (y[1] as number));
  for (const extra of [[], ['--approximate', '--candidates', '10']]) {
    const s = await runCli(['gallery', 'search', face('img4.jpg'), '--threshold', '2', ...extra, ...common]);
    assert.equal(s.code, 0, s.stderr);
    const r = JSON.parse(s.stdout);
    assert.deepEqual(r.matches.map((m: { identity: string }) => m.identity), expected.map((e) => e[0]), `search ${extra.join(' ')}`);
    r.matches.forEach((m: { distance: number }, i: number) => assert.ok(Math.abs(m.distance - (expected[i][1] as number)) < 1e-5, `${m.distance} vs ${expected[i][1]}`));
    assert.equal(r.identity, expected[0][0]);
  }
  const unknownId = await runCli(['gallery', 'remove', 'carol', '--db', url]);
  assert.equal(unknownId.code, 1);
  assert.match(unknownId.stderr, /no identity "carol" in the gallery/);
  assert.doesNotMatch(unknownId.stderr, /secret/, 'the password never appears in messages');
  assert.deepEqual(JSON.parse((await runCli(['gallery', 'remove', 'alice', '--db', url])).stdout), { identity: 'alice', removed: 2 });
  assert.deepEqual(jsonLines((await runCli(['gallery', 'list', '--db', url])).stdout), [{ identity: 'bob', faces: 1 }]);
});

test('postgres gallery: exact search and the binary-quantized index agree on clustered data; fp16 as halfvec', async () => {
  for (const precision of ['fp32', 'fp16'] as const) {
    const { url, db } = await startPostgres();
    const store = await PostgresStore.open(url);
    try {
      const dim = 256;
      await store.initialize({ modelKey: 'synthetic', modelName: 'synthetic', dimension: dim, precision });
      let s = 5;
      const next = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
      const centres = Array.from({ length: 40 }, () => Float32Array.from({ length: dim }, next));
      const faces = Array.from({ length: 400 }, (_, i) => ({
        identity: `p${i % 40}`,
        contentHash: `h${i}`,
        source: `f${i}`,
        descriptor: Float32Array.from(centres[i % 40], (x) => x + 0.2 * next()),
      }));
      await store.addMany(faces);
      assert.equal(await store.count(), 400);
      const query = Float32Array.from(centres[3], (x) => x + 0.2 * next());
      const exact = await store.search(query, { k: 5, metric: 'cosine' });
      assert.equal(exact[0].identity, 'p3');
      const best = Math.min(...faces.filter((f) => f.identity === 'p3').map((f) => distance(query, f.descriptor)));
      assert.ok(Math.abs(exact[0].distance - best) < (precision === 'fp16' ? 2e-3 : 1e-5), `${exact[0].distance} vs ${best}`);
      const approx = await store.search(query, { k: 5, metric: 'cosine', approximate: true, candidates: 100 });
      assert.equal(approx[0].identity, 'p3');
      const nearest = await store.nearestFaces(query, { k: 10, metric: 'cosine' });
      const approxFaces = await store.nearestFaces(query, { k: 10, metric: 'cosine', approximate: true, candidates: 100 });
      const recall = approxFaces.filter((f) => nearest.some((n) => n.id === f.id)).length / 10;
      assert.ok(recall >= 0.9, `recall@10 ${recall}`);
      const type = await db.query<{ t: string }>(`SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'vggface_faces'::regclass AND attname = 'embedding'`);
      assert.equal(type.rows[0].t, precision === 'fp16' ? 'halfvec(256)' : 'vector(256)');
    } finally {
      await store.close();
    }
  }
});

test('postgres gallery errors: unreachable server, wrong schema, newer schema, empty gallery', async (t) => {
  const cache = tempDir(t);
  const port = await freePort();
  const down = await runCli(['gallery', 'list', '--db', `postgres://me:hunter2@127.0.0.1:${port}/faces`]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, new RegExp(`cannot connect to postgres://me:\\*\\*\\*@127\\.0\\.0\\.1:${port}/faces: connection refused`));
  assert.doesNotMatch(down.stderr, /hunter2/);

  const { url: wrongUrl, db } = await startPostgres();
  await db.exec(`CREATE TABLE vggface_faces (id int, name text)`);
  const wrong = await runCli(['gallery', 'list', '--db', wrongUrl]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /wrong schema: found vggface_faces but not both vggface_meta and vggface_faces/);
  await db.exec(`CREATE TABLE vggface_meta (key text PRIMARY KEY, value text); INSERT INTO vggface_meta VALUES ('application', 'vggface-gallery'), ('schema_version', '1')`);
  const cols = await runCli(['gallery', 'list', '--db', wrongUrl]);
  assert.equal(cols.code, 1);
  assert.match(cols.stderr, /wrong schema: table vggface_faces has no column identity/);
  await db.exec(`UPDATE vggface_meta SET value = '7' WHERE key = 'schema_version'`);
  const newer = await runCli(['gallery', 'list', '--db', wrongUrl]);
  assert.equal(newer.code, 1);
  assert.match(newer.stderr, /gallery schema version 7 is newer than this vggface supports \(1\)/);

  const { url: emptyUrl } = await startPostgres();
  const empty = await runCli(['gallery', 'search', face('img1.jpg'), '--threshold', '0.5', '-w', WEIGHTS, '--cache-dir', cache, '--db', emptyUrl]);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /the gallery is empty: add faces first/);
  assert.equal(redactUrl('postgres://u:p@h/db'), 'postgres://u:***@h/db');
  // A plain pg client sees what the CLI wrote: the wire protocol is real.
  const c = new pg.Client({ connectionString: emptyUrl });
  await c.connect();
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
  await c.end();
});
