// @tags: postgres
/**
 * `vggface serve` with a PostgreSQL + pgvector gallery on the real test server: every gallery route, exact and
 * approximate search (--approximate builds the index at start, or with the tables of a new gallery), and the URL's
 * password never in an answer, /healthz or the log.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from './helpers.js';
import { call, form, photo, startServe, type Answer } from './fixtures/serve.js';
import { adminQuery, freshDatabase, PG_SKIP } from './fixtures/postgres.js';
import { YUNET_MODEL } from './fixtures/faces.js';

process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;
const TOKEN = 'test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
// biome-ignore lint/suspicious/noExplicitAny: JSON answers of any shape, checked field by field
type Json = Record<string, any>;

function assertError(r: Answer, status: number, code: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.equal((r.body as Json).error.code, code);
}

const hasAnnIndex = async (database: string) =>
  (await adminQuery(`SELECT 1 FROM pg_indexes WHERE indexname = 'vggface_projected_hnsw'`, [], database)).length === 1;

test('serve: a PostgreSQL + pgvector gallery, its URL and password never in an answer', {
  skip: PG_SKIP,
}, async (t) => {
  const { name, url: plain } = await freshDatabase(t);
  const u = new URL(plain);
  u.password = 'pg-secret';
  u.searchParams.set('password', 'pg-secret2');
  const pgUrl = u.toString();
  const cacheDir = tempDir(t);
  const server = await startServe(t, {
    cacheDir,
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--db', pgUrl, '--threshold', '0.5'],
  });
  const url = (path: string) => `${server.url}${path}`;
  assertError(await call(url('/v1/search'), 'POST', form([photo('img4.jpg')])), 404, 'gallery_empty');
  const added = await call<Json>(
    url('/v1/gallery/alice/faces'),
    'POST',
    form([photo('img1.jpg'), photo('img2.jpg'), photo('img1.jpg')]),
    auth,
  );
  assert.deepEqual(
    added.body.images.map((i: Json) => i.status),
    ['added', 'added', 'duplicate'],
  );
  assert.equal((await call(url('/v1/gallery/bob/faces'), 'POST', form([photo('img3.jpg')]), auth)).status, 200);
  assert.deepEqual((await call(url('/v1/gallery'), 'GET')).body, {
    identities: [
      { identity: 'alice', faces: 2 },
      { identity: 'bob', faces: 1 },
    ],
  });
  const found = (await call<Json>(url('/v1/search'), 'POST', form([photo('img2.jpg')], { k: '2' }))).body.results[0];
  assert.deepEqual([found.identity, found.matches.map((m: Json) => m.identity)], ['alice', ['alice', 'bob']]);
  assert.ok(found.distance < 1e-6);
  assert.equal(found.matches[0].source, 'img2.jpg');
  assert.equal(await hasAnnIndex(name), false, 'exact search needs no index');
  const health = await call<Json>(url('/healthz'), 'GET');
  assert.deepEqual([health.status, health.body.gallery], [200, { backend: 'postgres', state: 'ok' }]);
  assert.deepEqual((await call(url('/v1/gallery/bob'), 'DELETE', undefined, auth)).body, {
    identity: 'bob',
    removed: 1,
  });
  const missing = await call(url('/v1/gallery/bob'), 'DELETE', undefined, auth);
  assertError(missing, 404, 'identity_not_found');
  for (const text of [JSON.stringify(missing.body), JSON.stringify(health.body), server.stderr()]) {
    assert.ok(!text.includes('pg-secret') && !text.includes(`/${name}`), text);
  }
  server.child.kill('SIGTERM');
  assert.equal((await server.exited).code, 0);

  // --approximate on the same gallery: the index is built at start, and search answers through it.
  const approx = await startServe(t, {
    cacheDir,
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--db', pgUrl, '--threshold', '0.5', '--approximate', '--candidates', '20'],
  });
  assert.equal(await hasAnnIndex(name), true);
  const r = (await call<Json>(`${approx.url}/v1/search`, 'POST', form([photo('img2.jpg')], { k: '2' }))).body
    .results[0];
  assert.deepEqual(
    [r.identity, r.matches.map((m: Json) => m.identity), r.matches[0].source],
    ['alice', ['alice'], 'img2.jpg'],
  );
  assert.ok(r.distance < 1e-6);
  assert.doesNotMatch(approx.stderr(), /pg-secret/);
});

test('serve --approximate on a new PostgreSQL gallery: exact until there are faces to fit ' +
  'the projection on, then the index; bad --candidates is refused', {
  skip: PG_SKIP,
}, async (t) => {
  const { name, url } = await freshDatabase(t);
  const cacheDir = tempDir(t);
  const server = await startServe(t, {
    cacheDir,
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--db', url, '--threshold', '0.5', '--approximate'],
  });
  assert.equal(
    (await call(`${server.url}/v1/gallery/alice/faces`, 'POST', form([photo('img1.jpg')]), auth)).status,
    200,
  );
  const r = (await call<Json>(`${server.url}/v1/search`, 'POST', form([photo('img1.jpg')]))).body.results[0];
  assert.equal(r.identity, 'alice');
  assert.equal(await hasAnnIndex(name), false, 'one face: nothing to fit a projection on');
  assert.equal((await call(`${server.url}/v1/gallery/bob/faces`, 'POST', form([photo('img3.jpg')]), auth)).status, 200);
  const r2 = (await call<Json>(`${server.url}/v1/search`, 'POST', form([photo('img3.jpg')]))).body.results[0];
  assert.equal(r2.identity, 'bob');
  assert.equal(await hasAnnIndex(name), true, 'built by the first approximate search with 2 faces');
  await assert.rejects(
    startServe(t, {
      cacheDir,
      env: { VGGFACE_TOKEN: TOKEN },
      args: ['--db', url, '--approximate', '--candidates', '0'],
    }),
    /--candidates/,
  );
});
