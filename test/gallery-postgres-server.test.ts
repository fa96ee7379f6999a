// @tags: postgres
/**
 * The PostgreSQL gallery when its server goes away and comes back, and over SSL: each test runs a PostgreSQL
 * cluster of its own (../shared/scripts/pg-test-server on its own port and folder) that it stops, restarts and
 * reconfigures. `vggface serve` reconnects with backoff, /healthz says when the gallery is down (503), SIGTERM
 * ends the server promptly with the database down; sslmode behaves as libpq documents it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { GalleryUnavailableError, PostgresStore, type PostgresConnectionState } from '../src/gallery/postgres-store.js';
import { runCli, tempDir } from './helpers.js';
import { call, form, photo, startServe } from './fixtures/serve.js';
import { adminQuery, freshDatabase, PG_SKIP, startOwnServer, type OwnServer } from './fixtures/postgres.js';
import { YUNET_MODEL } from './fixtures/faces.js';

process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;
const TOKEN = 'test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
// biome-ignore lint/suspicious/noExplicitAny: JSON answers of any shape, checked field by field
type Json = Record<string, any>;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let own: OwnServer | undefined;
async function server(): Promise<OwnServer> {
  own ??= await startOwnServer();
  return own;
}

const META = { modelKey: 'synthetic', modelName: 'synthetic', dimension: 4, precision: 'fp32' as const };
const face = (i: number) => ({
  identity: `p${i}`,
  contentHash: `h${i}`,
  source: `f${i}`,
  descriptor: Float32Array.from([1, i, 0, 1]),
});

test('postgres store: after a restart the next operation reconnects; with reconnect, in the background with backoff', {
  skip: PG_SKIP,
}, async (t) => {
  const pg = await server();
  const { url } = await freshDatabase(t, { base: pg.url });
  const plain = await PostgresStore.open(url);
  const states: PostgresConnectionState['state'][] = [];
  const background = await PostgresStore.open(url, { reconnect: true, onStateChange: (s) => states.push(s.state) });
  t.after(async () => {
    await plain.close();
    await background.close();
  });
  await plain.initialize(META);
  await plain.add([face(1), face(2)]);
  pg.stop();
  await assert.rejects(plain.list(), (err: Error) => {
    assert.ok(err instanceof GalleryUnavailableError);
    assert.match(
      err.message,
      // line-width: regex
      /^cannot connect to postgres:\/\/postgres@127\.0\.0\.1:\d+\/vggface_test_\d+_\d+: connection refused \(is PostgreSQL running there\?\)$/,
    );
    return true;
  });
  await until('the background store to notice', async () =>
    background.connectionState.state === 'reconnecting' ? true : undefined,
  );
  assert.match(
    background.connectionState.error!,
    /terminating connection due to administrator command|connection refused|closed the connection/,
  );
  pg.start();
  // Nothing asked of `background`: it reconnects on its own.
  await until('the background store to reconnect', async () =>
    background.connectionState.state === 'connected' ? true : undefined,
  );
  assert.deepEqual(states, ['connected', 'reconnecting', 'connected']);
  assert.deepEqual(await background.list(), [
    { identity: 'p1', faces: 1 },
    { identity: 'p2', faces: 1 },
  ]);
  // The plain store's connection died with the server: its next operation opens another, without an error.
  assert.deepEqual(await plain.list(), [
    { identity: 'p1', faces: 1 },
    { identity: 'p2', faces: 1 },
  ]);
  pg.stop();
  pg.start();
  assert.deepEqual(
    (await plain.add([face(3), face(1)])).map((o) => o.status),
    ['added', 'duplicate'],
    'a write after a restart is repeated on a new connection',
  );
  assert.equal(await plain.count(), 3);
});

test('serve with PostgreSQL: restarts are survived, /healthz fails while the database ' +
  'is down, SIGTERM ends it promptly whatever the database', {
  skip: PG_SKIP,
}, async (t) => {
  const pg = await server();
  const { url: plain } = await freshDatabase(t, { base: pg.url });
  const u = new URL(plain);
  u.password = 'pg-secret';
  const url = u.toString();
  const serve = await startServe(t, {
    cacheDir: tempDir(t),
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--db', url, '--threshold', '0.5'],
  });
  const at = (path: string) => `${serve.url}${path}`;
  assert.equal(
    (await call(at('/v1/gallery/alice/faces'), 'POST', form([photo('img1.jpg'), photo('img2.jpg')]), auth)).status,
    200,
  );
  const healthy = await call<Json>(at('/healthz'), 'GET');
  assert.deepEqual(
    [healthy.status, healthy.body.status, healthy.body.gallery],
    [200, 'ok', { backend: 'postgres', state: 'ok' }],
  );

  for (const restart of ['stop, then start', 'stop and start at once']) {
    pg.stop();
    if (restart === 'stop and start at once') pg.start();
    else {
      const down = await until('/healthz to fail', async () => {
        const h = await call<Json>(at('/healthz'), 'GET');
        return h.status === 503 ? h : undefined;
      });
      assert.deepEqual(
        [down.body.status, down.body.gallery],
        ['gallery_unavailable', { backend: 'postgres', state: 'unavailable' }],
      );
      const list = await call<Json>(at('/v1/gallery'), 'GET');
      assert.deepEqual(
        [list.status, list.body, list.headers.get('retry-after')],
        [
          503,
          { error: { code: 'gallery_unavailable', message: 'the gallery database is unavailable: retry later' } },
          '2',
        ],
      );
      pg.start();
    }
    await until('/healthz to recover', async () =>
      (await call(at('/healthz'), 'GET')).status === 200 ? true : undefined,
    );
    const list = await until('the gallery to answer', async () => {
      const r = await call<Json>(at('/v1/gallery'), 'GET');
      return r.status === 200 ? r : undefined;
    });
    assert.deepEqual(list.body, { identities: [{ identity: 'alice', faces: 2 }] }, restart);
    const found = await call<Json>(at('/v1/search'), 'POST', form([photo('img2.jpg')]));
    assert.equal(found.body.results[0].identity, 'alice', restart);
  }
  assert.match(serve.stderr(), /gallery: lost the connection to PostgreSQL \([^)]+\); reconnecting\n/);
  assert.match(serve.stderr(), /gallery: connected to PostgreSQL again\n/);

  // SIGTERM with the database gone: the server stops at once.
  pg.stop();
  await until('/healthz to fail', async () => ((await call(at('/healthz'), 'GET')).status === 503 ? true : undefined));
  const started = Date.now();
  serve.child.kill('SIGTERM');
  const { code, signal } = await serve.exited;
  const took = Date.now() - started;
  pg.start();
  assert.deepEqual([code, signal], [0, null], serve.stderr());
  assert.ok(took < 8000, `SIGTERM took ${took} ms with the database down`);
  assert.match(serve.stderr(), /SIGTERM: finishing the requests in flight\n[\s\S]*stopped\n$/);
  assert.doesNotMatch(serve.stderr(), /pg-secret/);
});

test('serve with PostgreSQL: SIGTERM with a gallery request stuck on a lock ends promptly', {
  skip: PG_SKIP,
}, async (t) => {
  const pg = await server();
  const { name, url } = await freshDatabase(t, { base: pg.url });
  const serve = await startServe(t, {
    cacheDir: tempDir(t),
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--db', url, '--threshold', '0.5'],
  });
  assert.equal(
    (await call(`${serve.url}/v1/gallery/alice/faces`, 'POST', form([photo('img1.jpg')]), auth)).status,
    200,
  );
  const pgLib = (await import('pg')).default;
  const holder = new pgLib.Client({ connectionString: url });
  holder.on('error', () => {});
  await holder.connect();
  t.after(() => holder.end().catch(() => {}));
  await holder.query('BEGIN; LOCK TABLE vggface_faces IN ACCESS EXCLUSIVE MODE');
  const stuck = call(`${serve.url}/v1/gallery`, 'GET');
  await until('the request to wait on the lock', async () => {
    const rows = await adminQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`,
      [name],
      undefined,
      pg.url,
    );
    return rows[0].n > 0 ? true : undefined;
  });
  const started = Date.now();
  serve.child.kill('SIGTERM');
  const answer = await stuck;
  const { code } = await serve.exited;
  assert.equal(code, 0, serve.stderr());
  assert.ok(Date.now() - started < 8000, `SIGTERM took ${Date.now() - started} ms`);
  assert.deepEqual([answer.status, (answer.body as Json).error.code], [503, 'gallery_unavailable']);
});

test('sslmode as libpq documents it: disable, allow, prefer, require, ' +
  'verify-ca, verify-full against a self-signed server', {
  skip: PG_SKIP,
}, async (t) => {
  const pg = await server();
  const dir = tempDir(t);
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  const gen = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(gen.status, 0, gen.stderr);
  writeFileSync(join(pg.dir, 'server.crt'), readFileSync(cert));
  writeFileSync(join(pg.dir, 'server.key'), readFileSync(key), { mode: 0o600 });
  spawnSync('chown', ['postgres', join(pg.dir, 'server.crt'), join(pg.dir, 'server.key')]);
  pg.configure({ ssl: 'on' });
  const { name, url } = await freshDatabase(t, { base: pg.url });
  const withParams = (params: Record<string, string>, host = '127.0.0.1') => {
    const u = new URL(url);
    u.hostname = host;
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
    return u.toString();
  };
  /** Whether the store's connection is encrypted, as the server sees it. */
  const encrypted = async (target: string): Promise<boolean> => {
    const store = await PostgresStore.open(target);
    try {
      const rows = await adminQuery<{ ssl: boolean }>(
        'SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) ' +
          'WHERE a.datname = $1 AND a.pid <> pg_backend_pid()',
        [name],
        undefined,
        pg.url,
      );
      assert.equal(rows.length, 1);
      return rows[0].ssl;
    } finally {
      await store.close();
    }
  };
  assert.equal(await encrypted(withParams({ sslmode: 'disable' })), false);
  assert.equal(await encrypted(withParams({ sslmode: 'allow' })), false, 'allow: plain first');
  assert.equal(await encrypted(withParams({})), true, 'the default is prefer');
  assert.equal(await encrypted(withParams({ sslmode: 'prefer' })), true);
  assert.equal(
    await encrypted(withParams({ sslmode: 'require' })),
    true,
    'require encrypts without checking the certificate',
  );
  assert.equal(
    await encrypted(withParams({ sslmode: 'verify-ca', sslrootcert: cert })),
    true,
    'verify-ca checks the CA, not the name',
  );
  assert.equal(await encrypted(withParams({ sslmode: 'verify-full', sslrootcert: cert }, 'localhost')), true);
  const unverified = await runCli([
    'gallery',
    'list',
    '--db',
    withParams({ sslmode: 'verify-full', password: 'hunter2' }),
  ]);
  assert.equal(unverified.code, 1);
  assert.match(
    unverified.stderr,
    // line-width: regex
    /cannot connect to \S+: self[- ]signed certificate \(sslmode=verify-full checks the server's certificate and its name: name its CA with sslrootcert=FILE, or use sslmode=require to encrypt without checking\)/,
  );
  assert.doesNotMatch(unverified.stderr, /hunter2/);
  const wrongName = await runCli([
    'gallery',
    'list',
    '--db',
    withParams({ sslmode: 'verify-full', sslrootcert: cert }),
  ]);
  assert.equal(wrongName.code, 1);
  assert.match(wrongName.stderr, /cannot connect to \S+: Hostname\/IP does not match certificate's altnames/);

  // A database that takes only SSL connections: allow tries plain, then SSL; disable cannot connect.
  const hba = join(pg.dir, 'pg_hba.conf');
  const original = readFileSync(hba, 'utf8');
  const reload = () => adminQuery('SELECT pg_reload_conf()', [], undefined, pg.url);
  t.after(async () => {
    writeFileSync(hba, original);
    await reload();
  });
  writeFileSync(hba, `hostnossl ${name} all 127.0.0.1/32 reject\n${original}`);
  await reload();
  assert.equal(await encrypted(withParams({ sslmode: 'allow' })), true, 'allow falls back to SSL');
  const refused = await runCli(['gallery', 'list', '--db', withParams({ sslmode: 'disable' })]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    // line-width: regex
    /cannot connect to \S+: pg_hba\.conf rejects connection for host "127\.0\.0\.1", user "postgres", database "vggface_test_\d+_\d+", no encryption\n$/,
  );
});
