// @tags: postgres
/**
 * The PostgreSQL + pgvector gallery against a real server (../shared/scripts/pg-test-server: PostgreSQL 15 from
 * Debian, pgvector 0.8.6), each test in a database of its own: the CLI and the store, the approximate index only
 * where asked for, bulk loads, schemas, passwords, timeouts, retried deadlocks and serialization failures,
 * pgvector too old or not creatable, and PgBouncer in transaction mode.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { distance } from '../src/distance/distance.js';
import { parsePostgresUrl, PG_DEFAULTS, PostgresStore, redactUrl, vectorParam } from '../src/gallery/postgres-store.js';
import type { NewFace } from '../src/gallery/types.js';
import { VggFace } from '../src/vggface.js';
import { describeLargestFaces, FACES_DIR, GOLDEN_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';
import {
  adminQuery,
  freePort,
  freshDatabase,
  freshRole,
  PG_SKIP,
  PGBOUNCER,
  startPgBouncer,
  withDatabase,
} from './fixtures/postgres.js';

// Whole photos go through face detection: use the shared YuNet copy, never the network.
process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const face = (n: string) => join(FACES_DIR, n);
const skip = PG_SKIP;

/** The URL with a password (the test server trusts every local connection, so any password works). */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

function addParams(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

async function indexes(database: string, schema = 'public', table = 'vggface_faces'): Promise<string[]> {
  const rows = await adminQuery<{ indexname: string }>(
    `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY 1`,
    [schema, table],
    database,
  );
  return rows.map((r) => r.indexname);
}

function synthetic(n: number, dim: number, seed = 5, prefix = 'h'): NewFace[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
  const centres = Array.from({ length: 40 }, () => Float32Array.from({ length: dim }, next));
  return Array.from({ length: n }, (_, i) => ({
    identity: `p${i % 40}`,
    contentHash: `${prefix}${i}`,
    source: `f${i}`,
    descriptor: Float32Array.from(centres[i % 40], (x) => x + 0.2 * next()),
  }));
}

const META = (dimension: number, precision: 'fp32' | 'fp16' = 'fp32') => ({
  modelKey: 'synthetic',
  modelName: 'synthetic',
  dimension,
  precision,
});

test('postgres gallery from the CLI: schema created, add with duplicates, exact ' +
  'search, approximate search builds its index once, list, remove', {
  skip,
}, async (t) => {
  const { name, url: plain } = await freshDatabase(t);
  const url = withPassword(plain, 'secret');
  const cache = tempDir(t);
  const common = ['-w', WEIGHTS, '--cache-dir', cache, '--db', url];
  const add = await runCli([
    'gallery',
    'add',
    '--id',
    'alice',
    face('img1.jpg'),
    face('img2.jpg'),
    face('img1.jpg'),
    ...common,
  ]);
  assert.equal(add.code, 0, add.stderr);
  assert.deepEqual(
    jsonLines(add.stdout).map((l) => l.status),
    ['added', 'added', 'duplicate'],
  );
  assert.equal(
    (await runCli(['gallery', 'add', '--id', 'bob', face('img3.jpg'), face('img2.jpg'), ...common])).code,
    0,
  );
  const list = await runCli(['gallery', 'list', '--db', url]);
  assert.deepEqual(jsonLines(list.stdout), [
    { identity: 'alice', faces: 2 },
    { identity: 'bob', faces: 1 },
  ]);
  const tables = await adminQuery<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    [],
    name,
  );
  assert.deepEqual(
    tables.map((r) => r.table_name),
    ['vggface_faces', 'vggface_meta', 'vggface_projected', 'vggface_projection'],
  );
  // No approximate index until an approximate search asks for it: adds do not pay for it.
  assert.deepEqual(await indexes(name), [
    'vggface_faces_content_hash_key',
    'vggface_faces_identity',
    'vggface_faces_pkey',
  ]);

  const model = await VggFace.load({ weights: WEIGHTS, cacheDir: cache });
  const [q, a1, a2, b1] = await describeLargestFaces(model, [
    face('img4.jpg'),
    face('img1.jpg'),
    face('img2.jpg'),
    face('img3.jpg'),
  ]);
  await model.close();
  const expected = [
    ['alice', Math.min(distance(q, a1), distance(q, a2))],
    ['bob', distance(q, b1)],
  ].sort((x, y) => (x[1] as number) - (y[1] as number));
  for (const extra of [[], ['--approximate', '--candidates', '10'], ['--approximate']]) {
    const s = await runCli(['gallery', 'search', face('img4.jpg'), '--threshold', '2', ...extra, ...common]);
    assert.equal(s.code, 0, s.stderr);
    const r = JSON.parse(s.stdout);
    assert.deepEqual(
      r.matches.map((m: { identity: string }) => m.identity),
      expected.map((e) => e[0]),
      `search ${extra.join(' ')}`,
    );
    r.matches.forEach((m: { distance: number }, i: number) =>
      assert.ok(Math.abs(m.distance - (expected[i][1] as number)) < 1e-5, `${m.distance} vs ${expected[i][1]}`),
    );
    assert.equal(r.identity, expected[0][0]);
    // The first approximate search builds the index and says so; the next finds it.
    assert.equal(/building the approximate-search index/.test(s.stderr), extra.length === 3, s.stderr);
  }
  const idx = await adminQuery<{ indexdef: string }>(
    `SELECT indexdef FROM pg_indexes WHERE indexname = 'vggface_projected_hnsw'`,
    [],
    name,
  );
  // HNSW over the projection's first components as halfvec (here all 2 of them).
  assert.match(
    idx[0].indexdef,
    // line-width: regex
    /ON public\.vggface_projected USING hnsw \(\(\(subvector\(proj, 1, 2\)\)::halfvec\(2\)\) halfvec_l2_ops\) WITH \(m='16', ef_construction='200'\)$/,
  );
  // Every face has its projection (3 faces: a projection of 2 dimensions, all the sample allows).
  const projected = await adminQuery<{ n: string; t: string }>(
    'SELECT count(*) AS n, max(format_type(atttypid, atttypmod)) AS t FROM vggface_projected, ' +
      "pg_attribute WHERE attrelid = 'vggface_projected'::regclass AND attname = 'proj'",
    [],
    name,
  );
  assert.deepEqual(projected[0], { n: '3', t: 'vector(2)' });
  const unknownId = await runCli(['gallery', 'remove', 'carol', '--db', url]);
  assert.equal(unknownId.code, 1);
  assert.match(unknownId.stderr, /no identity "carol" in the gallery/);
  assert.doesNotMatch(unknownId.stderr, /secret/, 'the password never appears in messages');
  assert.deepEqual(JSON.parse((await runCli(['gallery', 'remove', 'alice', '--db', url])).stdout), {
    identity: 'alice',
    removed: 2,
  });
  assert.deepEqual(jsonLines((await runCli(['gallery', 'list', '--db', url])).stdout), [{ identity: 'bob', faces: 1 }]);
});

test('postgres gallery: exact search and the projection index agree on clustered ' +
  'data; fp16 as halfvec; bulk load rebuilds the index', {
  skip,
}, async (t) => {
  for (const precision of ['fp32', 'fp16'] as const) {
    const { name, url } = await freshDatabase(t);
    const store = await PostgresStore.open(url);
    try {
      const dim = 256;
      await store.initialize(META(dim, precision));
      assert.equal(await store.ensureAnnIndex(), false, 'an empty gallery has nothing to fit a projection on');
      const faces = synthetic(400, dim);
      assert.equal(await store.load([faces.slice(0, 150)]), 150);
      assert.equal(await store.ensureAnnIndex(), true);
      assert.equal(await store.ensureAnnIndex(), false, 'built once');
      assert.equal(await store.load([faces.slice(150), faces.slice(0, 10)]), 250);
      assert.equal(await store.count(), 400);
      const annIndexes = await adminQuery<{ indexname: string }>(
        `SELECT indexname FROM pg_indexes WHERE tablename = 'vggface_projected' ORDER BY 1`,
        [],
        name,
      );
      assert.deepEqual(
        annIndexes.map((r) => r.indexname),
        ['vggface_projected_hnsw', 'vggface_projected_pkey'],
        'the index is back after the load',
      );
      const projected = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM vggface_projected`, [], name);
      assert.equal(projected[0].n, '400', 'the load projected every new face');
      const query = Float32Array.from(faces[3].descriptor, (x, i) => x + 0.05 * Math.sin(i));
      const exact = await store.search(query, { k: 5, metric: 'cosine' });
      assert.equal(exact[0].identity, 'p3');
      const best = Math.min(...faces.filter((f) => f.identity === 'p3').map((f) => distance(query, f.descriptor)));
      assert.ok(
        Math.abs(exact[0].distance - best) < (precision === 'fp16' ? 2e-3 : 1e-5),
        `${exact[0].distance} vs ${best}`,
      );
      const approx = await store.search(query, { k: 5, metric: 'cosine', approximate: true, candidates: 100 });
      assert.equal(approx[0].identity, 'p3');
      const nearest = await store.nearestFaces(query, { k: 10, metric: 'cosine' });
      const approxFaces = await store.nearestFaces(query, {
        k: 10,
        metric: 'cosine',
        approximate: true,
        candidates: 100,
      });
      const recall = approxFaces.filter((f) => nearest.some((n) => n.id === f.id)).length / 10;
      assert.ok(recall >= 0.9, `recall@10 ${recall}`);
      const type = await adminQuery<{ t: string }>(
        'SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid ' +
          "= 'vggface_faces'::regclass AND attname = 'embedding'",
        [],
        name,
      );
      assert.equal(type[0].t, precision === 'fp16' ? 'halfvec(256)' : 'vector(256)');
    } finally {
      await store.close();
    }
  }
});

test('postgres gallery: a bulk load that fails stores nothing and keeps the ' +
  'index; descriptors go over the wire as pgvector reads them', {
  skip,
}, async (t) => {
  const { name, url } = await freshDatabase(t);
  const store = await PostgresStore.open(url);
  t.after(() => store.close());
  await store.initialize(META(8));
  await store.addMany(synthetic(5, 8, 1, 'old'));
  await store.ensureAnnIndex();
  const bad = synthetic(30, 8, 2, 'new');
  bad[25] = { ...bad[25], descriptor: new Float32Array(4) };
  await assert.rejects(
    store.load([bad.slice(0, 20), bad.slice(20)]),
    /loading faces failed: expected 8 dimensions, not 4/,
  );
  assert.equal(await store.count(), 5, 'nothing of the failed load is stored');
  assert.deepEqual(
    await indexes(name, 'public', 'vggface_projected'),
    ['vggface_projected_hnsw', 'vggface_projected_pkey'],
    'the index is kept',
  );
  // The binary parameter is pgvector's wire format: big-endian floats (or halves) after the dimension.
  const v = Float32Array.from([1.5, -2.25, 3e-8, 65504]);
  const b = vectorParam(v, 'fp32');
  assert.deepEqual(
    [b.readInt16BE(0), b.readInt16BE(2), b.readFloatBE(4), b.readFloatBE(8), b.readFloatBE(12), b.readFloatBE(16)],
    [4, 0, 1.5, -2.25, Math.fround(3e-8), 65504],
  );
  const h = vectorParam(v, 'fp16');
  assert.deepEqual([h.length, h.readUInt16BE(4), h.readUInt16BE(6), h.readUInt16BE(10)], [12, 0x3e00, 0xc080, 0x7bff]);
});

test('postgres gallery errors: unreachable server, no such database, wrong ' +
  'schema, newer schema, empty gallery, bad URL parameters', {
  skip,
}, async (t) => {
  const cache = tempDir(t);
  const port = await freePort();
  const down = await runCli([
    'gallery',
    'list',
    '--db',
    `postgres://me:hunter2@127.0.0.1:${port}/faces?password=hunter3&sslmode=disable`,
  ]);
  assert.equal(down.code, 1);
  assert.equal(
    down.stderr.trim(),
    'vggface: cannot connect to ' +
      `postgres://me:***@127.0.0.1:${port}/faces?password=***&sslmode=disable: connection ` +
      'refused (is PostgreSQL running there?)',
  );

  const { name, url } = await freshDatabase(t);
  const missing = withDatabase(url, 'no_such_db', undefined, 'hunter2') + '?password=hunter3';
  const nodb = await runCli(['gallery', 'list', '--db', missing]);
  assert.equal(nodb.code, 1);
  assert.match(
    nodb.stderr,
    // line-width: regex
    /cannot connect to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/no_such_db\?password=\*\*\*: database "no_such_db" does not exist/,
  );
  assert.doesNotMatch(nodb.stderr, /hunter/);

  await adminQuery(`CREATE TABLE vggface_faces (id int, name text)`, [], name);
  const wrong = await runCli(['gallery', 'list', '--db', url]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /wrong schema: found vggface_faces but not both vggface_meta and vggface_faces/);
  await adminQuery(
    'CREATE TABLE vggface_meta (key text PRIMARY KEY, value text); INSERT INTO vggface_meta ' +
      "VALUES ('application', 'vggface-gallery'), ('schema_version', '1')",
    [],
    name,
  );
  const cols = await runCli(['gallery', 'list', '--db', url]);
  assert.equal(cols.code, 1);
  assert.match(cols.stderr, /wrong schema: table vggface_faces has no column identity/);
  await adminQuery(`UPDATE vggface_meta SET value = '7' WHERE key = 'schema_version'`, [], name);
  const newer = await runCli(['gallery', 'list', '--db', url]);
  assert.equal(newer.code, 1);
  assert.match(newer.stderr, /gallery schema version 7 is newer than this vggface supports \(2\)/);

  const { url: emptyUrl } = await freshDatabase(t);
  const empty = await runCli([
    'gallery',
    'search',
    face('img1.jpg'),
    '--threshold',
    '0.5',
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--db',
    emptyUrl,
  ]);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /the gallery is empty: add faces first/);

  for (const [param, message] of [
    ['lock_timeout=soon', /lock_timeout must be a duration such as 500ms, 30s or 2min \(0 for none\), got "soon"/],
    [
      'schema=no-dash',
      /schema must be a name of 1 to 63 letters, digits, _ or \$, not starting with a digit, got "no-dash"/,
    ],
    ['sslmode=always', /sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, got "always"/],
  ] as const) {
    const r = await runCli(['gallery', 'list', '--db', `${emptyUrl}?${param}&password=hunter2`]);
    assert.equal(r.code, 2, `${param}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /password=\*\*\*/);
    assert.doesNotMatch(r.stderr, /hunter2/);
  }
});

test('passwords are never printed: redacted URLs, messages, --help', { skip }, async () => {
  assert.equal(redactUrl('postgres://u:p@h/db'), 'postgres://u:***@h/db');
  assert.equal(
    redactUrl('postgresql://u:p%40ss@h:5/db?sslmode=require&password=x&PASSWORD=y'),
    'postgresql://u:***@h:5/db?sslmode=require&password=***&PASSWORD=***',
  );
  assert.equal(redactUrl('postgres://u@h/db?sslpassword=k'), 'postgres://u@h/db?sslpassword=***');
  assert.equal(redactUrl('postgres://u:pw@h:bad port/db?password=x'), 'postgres://u:***@h:bad port/db?password=***');
  const bad = await runCli(['gallery', 'list', '--db', 'postgres://u:pw@h:bad port/db?password=x']);
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr.trim(),
    'vggface: postgres://u:***@h:bad port/db?password=***: not a valid URL (expected ' +
      'postgres://user@host:port/database; encode special characters of the password as %XX)',
  );
  for (const args of [
    ['gallery', 'add', '--help'],
    ['gallery', 'search', '--help'],
    ['gallery', 'list', '--help'],
    ['serve', '--help'],
  ]) {
    const help = await runCli(args);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /postgres:\/\/user@host\/db/, args.join(' '));
    assert.doesNotMatch(help.stdout, /postgres:\/\/[^@\s]*:[^@\s]*@|password=/, `${args.join(' ')} shows no password`);
  }
});

test('postgres gallery: schemas let several models share one database', { skip }, async (t) => {
  const { name, url } = await freshDatabase(t);
  const a = await PostgresStore.open(addParams(url, { schema: 'model_a' }));
  const b = await PostgresStore.open(addParams(url, { schema: 'Model_B' }));
  const p = await PostgresStore.open(url);
  t.after(async () => {
    await a.close();
    await b.close();
    await p.close();
  });
  await a.initialize(META(8));
  await b.initialize(META(16, 'fp16'));
  await a.add(synthetic(3, 8));
  await b.add(synthetic(5, 16));
  assert.deepEqual([await a.count(), await b.count(), await p.count(), await p.meta()], [3, 5, 0, undefined]);
  assert.deepEqual((await b.meta())!.dimension, 16);
  await b.ensureAnnIndex();
  assert.equal(
    (await b.search(synthetic(5, 16)[2].descriptor, { k: 1, metric: 'cosine', approximate: true, candidates: 5 }))[0]
      .identity,
    'p2',
  );
  const tables = await adminQuery<{ s: string; t: string }>(
    'SELECT table_schema AS s, table_name AS t FROM ' +
      "information_schema.tables WHERE table_name LIKE 'vggface%' ORDER BY 1, 2",
    [],
    name,
  );
  assert.deepEqual(tables, [
    { s: 'Model_B', t: 'vggface_faces' },
    { s: 'Model_B', t: 'vggface_meta' },
    { s: 'Model_B', t: 'vggface_projected' },
    { s: 'Model_B', t: 'vggface_projection' },
    { s: 'model_a', t: 'vggface_faces' },
    { s: 'model_a', t: 'vggface_meta' },
    { s: 'model_a', t: 'vggface_projected' },
    { s: 'model_a', t: 'vggface_projection' },
  ]);
  assert.deepEqual(await indexes(name, 'model_a'), [
    'vggface_faces_content_hash_key',
    'vggface_faces_identity',
    'vggface_faces_pkey',
  ]);
  assert.deepEqual(await indexes(name, 'Model_B', 'vggface_projected'), [
    'vggface_projected_hnsw',
    'vggface_projected_pkey',
  ]);
  assert.deepEqual(
    await indexes(name, 'model_a', 'vggface_projected'),
    ['vggface_projected_pkey'],
    'no approximate index where none was asked for',
  );
  // The CLI reaches each through its URL.
  assert.deepEqual(
    jsonLines((await runCli(['gallery', 'list', '--db', addParams(url, { schema: 'model_a' })])).stdout),
    [
      { identity: 'p0', faces: 1 },
      { identity: 'p1', faces: 1 },
      { identity: 'p2', faces: 1 },
    ],
  );
});

test('postgres gallery timeouts: defaults, URL parameters, a held lock and a slow statement end with a message', {
  skip,
}, async (t) => {
  const { name, url } = await freshDatabase(t);
  const defaults = await PostgresStore.open(url);
  await defaults.initialize(META(8));
  await defaults.add(synthetic(2, 8));
  assert.deepEqual(
    [defaults.statementTimeoutMs, defaults.lockTimeoutMs],
    [PG_DEFAULTS.statementTimeoutMs, PG_DEFAULTS.lockTimeoutMs],
  );
  assert.deepEqual([PG_DEFAULTS.statementTimeoutMs, PG_DEFAULTS.lockTimeoutMs], [60_000, 10_000]);
  await defaults.close();
  const custom = await PostgresStore.open(addParams(url, { statement_timeout: '2min', lock_timeout: '1500' }));
  assert.deepEqual([custom.statementTimeoutMs, custom.lockTimeoutMs], [120_000, 1500]);
  await custom.close();

  // Another session holds the table: list gives up after the lock timeout instead of hanging.
  const holder = new pg.Client({ connectionString: url });
  holder.on('error', () => {}); // the database is dropped after the test
  await holder.connect();
  t.after(() => holder.end());
  await holder.query(`BEGIN; LOCK TABLE vggface_faces IN ACCESS EXCLUSIVE MODE`);
  const started = Date.now();
  const locked = await runCli([
    'gallery',
    'list',
    '--db',
    addParams(url, { lock_timeout: '300ms', password: 'hunter2' }),
  ]);
  assert.equal(locked.code, 1);
  assert.ok(Date.now() - started < 8000);
  assert.match(
    locked.stderr,
    // line-width: regex
    /^vggface: postgres:\/\/\S+: listing identities waited longer than the lock timeout \(300 ms\) for a lock another session holds: canceling statement due to lock timeout; retry later, or raise it with lock_timeout in the URL \(for example \?lock_timeout=1min\)\n$/,
  );
  assert.doesNotMatch(locked.stderr, /hunter2/);
  const slow = await runCli([
    'gallery',
    'list',
    '--db',
    addParams(url, { lock_timeout: '0', statement_timeout: '400ms' }),
  ]);
  assert.equal(slow.code, 1);
  assert.match(
    slow.stderr,
    // line-width: regex
    /listing identities took longer than the statement timeout \(400 ms\): raise it with statement_timeout in the URL \(for example \?statement_timeout=5min; 0 for none\)/,
  );
  await holder.query('ROLLBACK');
  assert.equal(jsonLines((await runCli(['gallery', 'list', '--db', url])).stdout).length, 2);
  void name;
});

test('postgres gallery: pgvector too old names both versions and the fix', { skip }, async (t) => {
  const { name, url } = await freshDatabase(t);
  await adminQuery(`CREATE EXTENSION vector`, [], name);
  // As if an older pgvector were installed (Ubuntu 24.04 ships 0.6.0): only the catalogue says so.
  await adminQuery(`UPDATE pg_extension SET extversion = '0.6.0' WHERE extname = 'vector'`, [], name);
  const r = await runCli(['gallery', 'list', '--db', url]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr.trim(),
    `vggface: ${url}: pgvector 0.6.0 is installed in database "${name}"; vggface needs 0.7.0 or later ` +
      `(halfvec): a superuser runs, connected to database "${name}": ALTER EXTENSION vector UPDATE;`,
  );
});

test('postgres gallery owned by a role that is not a superuser: the exact SQL a superuser must run, then it works', {
  skip,
}, async (t) => {
  const role = await freshRole(t);
  const { name, url: adminUrl } = await freshDatabase(t, { owner: role });
  const url = withDatabase(adminUrl, name, role, 'pw-of-role');
  const cache = tempDir(t);
  const add = ['gallery', 'add', '--id', 'alice', face('img1.jpg'), '-w', WEIGHTS, '--cache-dir', cache, '--db', url];
  const denied = await runCli(add);
  assert.equal(denied.code, 1);
  const m =
    // line-width: regex
    /^vggface: (\S+): role "(\w+)" may not create the pgvector extension in database "(\w+)" \(permission denied to create extension "vector"\): a superuser must run, connected to database "(\w+)": (CREATE EXTENSION IF NOT EXISTS vector;)\n$/.exec(
      denied.stderr,
    );
  assert.ok(m, denied.stderr);
  assert.deepEqual([m[1], m[2], m[3], m[4]], [redactUrl(url), role, name, name]);
  assert.doesNotMatch(denied.stderr, /pw-of-role/);
  assert.deepEqual(
    await adminQuery(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`, [], name),
    [],
    'nothing half-created',
  );
  await adminQuery(m[5], [], name);
  const ok = await runCli(add);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(await adminQuery(`SELECT tableowner FROM pg_tables WHERE tablename = 'vggface_faces'`, [], name), [
    { tableowner: role },
  ]);
});

test('postgres gallery: concurrent adds of the same faces in opposite order never ' +
  'deadlock; injected deadlocks and serialization failures are retried', {
  skip,
}, async (t) => {
  const { name, url } = await freshDatabase(t);
  const a = await PostgresStore.open(url);
  const b = await PostgresStore.open(url);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  await a.initialize(META(16));
  for (let run = 0; run < 6; run++) {
    const faces = synthetic(256, 16, run + 1, `r${run}-`);
    const [x, y] = await Promise.all([a.add(faces), b.add([...faces].reverse())]);
    const added = [...x, ...y].filter((o) => o.status === 'added').length;
    assert.equal(added, 256, `run ${run}: every face added exactly once`);
    assert.ok([...x, ...y].every((o) => o.status === 'added' || o.status === 'duplicate'));
  }
  assert.equal(await a.count(), 6 * 256);

  // A trigger that fails the first attempts as PostgreSQL would under contention (a sequence is not rolled back).
  await adminQuery(
    `CREATE SEQUENCE fault_seq;
     CREATE FUNCTION fault() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF nextval('fault_seq') <= current_setting('fault.failures')::int THEN
           RAISE EXCEPTION 'injected failure' USING ERRCODE = current_setting('fault.code');
         END IF;
         RETURN NULL;
       END $$;
     CREATE TRIGGER fault BEFORE INSERT ON vggface_faces FOR EACH STATEMENT EXECUTE FUNCTION fault();`,
    [],
    name,
  );
  for (const code of ['40P01', '40001']) {
    await adminQuery(`ALTER DATABASE ${name} SET fault.code = '${code}'`);
    await adminQuery(`ALTER DATABASE ${name} SET fault.failures = '2'`);
    await adminQuery(`SELECT setval('fault_seq', 1, false)`, [], name);
    const store = await PostgresStore.open(url); // a new session reads the database's settings
    const faces = synthetic(3, 16, 9, `retry-${code}-`);
    assert.deepEqual(
      (await store.add(faces)).map((o) => o.status),
      ['added', 'added', 'added'],
      `${code} retried`,
    );
    await store.close();
  }
  await adminQuery(`ALTER DATABASE ${name} SET fault.failures = '1000'`);
  const store = await PostgresStore.open(url);
  await assert.rejects(store.add(synthetic(3, 16, 9, 'never-')), (err: Error) => {
    assert.equal(err.message, `${redactUrl(url)}: adding 3 faces failed 6 times, each time with: injected failure`);
    return true;
  });
  await store.close();
  assert.equal(await a.count(), 6 * 256 + 6, 'nothing of the failed add is stored');
});

test('postgres gallery through PgBouncer in transaction mode: the CLI and concurrent stores on 2 server connections', {
  skip: skip || (!PGBOUNCER && 'pgbouncer is not installed (apt-get install pgbouncer)'),
}, async (t) => {
  const { url: direct } = await freshDatabase(t);
  const url = await startPgBouncer(t, direct, 2);
  const cache = tempDir(t);
  const common = ['-w', WEIGHTS, '--cache-dir', cache, '--db', url];
  const add = await runCli(['gallery', 'add', '--id', 'alice', face('img1.jpg'), face('img2.jpg'), ...common]);
  assert.equal(add.code, 0, add.stderr);
  assert.equal((await runCli(['gallery', 'add', '--id', 'bob', face('img3.jpg'), ...common])).code, 0);
  for (const extra of [[], ['--approximate', '--candidates', '10']]) {
    const s = await runCli(['gallery', 'search', face('img2.jpg'), '--threshold', '2', ...extra, ...common]);
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(
      JSON.parse(s.stdout).matches.map((m: { identity: string }) => m.identity),
      ['alice', 'bob'],
    );
  }
  // Five sessions over two server connections: transactions of different clients interleave on the same backends.
  const stores = await Promise.all(
    Array.from({ length: 5 }, (_, i) => PostgresStore.open(addParams(url, { lock_timeout: `${1000 + i}` }))),
  );
  t.after(async () => {
    for (const s of stores) await s.close();
  });
  const faces = synthetic(100, 32, 3, 'pgb');
  await Promise.all(stores.map((s, i) => s.add(faces.slice(i * 20, i * 20 + 20))));
  const counts = await Promise.all(stores.map((s) => s.count()));
  assert.deepEqual(counts, [103, 103, 103, 103, 103]);
  const found = await Promise.all(
    stores.map((s, i) =>
      s.search(faces[i * 20 + 1].descriptor, { k: 1, metric: 'cosine', approximate: i % 2 === 0, candidates: 20 }),
    ),
  );
  assert.deepEqual(
    found.map((f) => f[0].face.source),
    ['f1', 'f21', 'f41', 'f61', 'f81'],
  );
  assert.deepEqual(jsonLines((await runCli(['gallery', 'list', '--db', url])).stdout).slice(0, 2), [
    { identity: 'alice', faces: 2 },
    { identity: 'bob', faces: 1 },
  ]);
});

test('sslmode as libpq documents it: the connection attempts for each mode', { skip }, () => {
  const modes = (url: string, env: NodeJS.ProcessEnv = {}) =>
    parsePostgresUrl(url, env).attempts.map(
      (a) =>
        `${a.ssl ? 'ssl' : 'plain'}:${new URL(a.connectionString).searchParams.get('sslmode')}:` +
        `${new URL(a.connectionString).searchParams.get('uselibpqcompat') ?? '-'}`,
    );
  assert.deepEqual(
    modes('postgres://h/db'),
    ['ssl:require:true', 'plain:disable:-'],
    'default prefer: SSL without verification, else plain',
  );
  assert.deepEqual(modes('postgres://h/db', { PGSSLMODE: 'verify-full' }), ['ssl:verify-full:true']);
  assert.deepEqual(modes('postgres://h/db?sslmode=disable'), ['plain:disable:-']);
  assert.deepEqual(modes('postgres://h/db?sslmode=allow'), ['plain:disable:-', 'ssl:require:true']);
  assert.deepEqual(modes('postgres://h/db?sslmode=require&uselibpqcompat=false'), ['ssl:require:true']);
  assert.deepEqual(modes('postgres://h/db?sslmode=no-verify'), ['ssl:require:true']);
  assert.deepEqual(modes('postgres://h/db?sslmode=verify-ca'), ['ssl:verify-ca:true']);
  const parsed = parsePostgresUrl(
    'postgres://u:p@h/db?schema=s1&statement_timeout=1s&lock_timeout=2min&connect_timeout=3&application_name=x',
  );
  assert.deepEqual(
    [parsed.schema, parsed.statementTimeoutMs, parsed.lockTimeoutMs, parsed.connectTimeoutMs],
    ['s1', 1000, 120_000, 3000],
  );
  assert.equal(
    parsed.attempts[1].connectionString,
    'postgres://u:p@h/db?application_name=x&sslmode=disable',
    'vggface parameters are not sent to the server',
  );
});
