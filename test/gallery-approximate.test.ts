// @tags: postgres
/**
 * Approximate search in both stores (SQLite's in-memory projection index, PostgreSQL's HNSW over vggface_projected):
 * the same answers as exact search on clustered data, adds after the build are projected, removes take their
 * projections, another process finds the stored projection, a projection fitted on a small gallery is fitted
 * again once the gallery has doubled, and a gallery of one face is searched exactly.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import pg from 'pg';
import { efSearch, PostgresStore } from '../src/gallery/postgres-store.js';
import { SqliteStore } from '../src/gallery/sqlite-store.js';
import { DEFAULT_CANDIDATES } from '../src/gallery/approximate.js';
import { ProjectionIndex } from '../src/gallery/projection-index.js';
import type { GalleryStore, NewFace } from '../src/gallery/types.js';
import { tempDir } from './helpers.js';
import { adminQuery, freshDatabase, PG_SKIP } from './fixtures/postgres.js';
import { mulberry32 } from '../src/util/random.js';

const DIM = 128;
const IDENTITIES = 60;

const rng = (seed: number): (() => number) => {
  const r = mulberry32(seed);
  return () => r() - 0.5;
};

/** Identities in a 24-d subspace plus small isotropic noise, non-negative and unit length like fc7 descriptors. */
function faces(n: number, seed: number, prefix: string): NewFace[] {
  const basis = rng(7);
  const dirs = Array.from({ length: 24 }, () => Float32Array.from({ length: DIM }, basis));
  const centres = Array.from({ length: IDENTITIES }, (_, i) => {
    const r = rng(1000 + i);
    const c = new Float32Array(DIM).fill(0.5);
    for (const d of dirs) {
      const z = r() * 2;
      for (let j = 0; j < DIM; j++) c[j] += z * d[j];
    }
    return c;
  });
  const noise = rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const v = Float32Array.from(centres[i % IDENTITIES], (x) => Math.max(0, x + 0.15 * noise()));
    const norm = Math.hypot(...v);
    return {
      identity: `p${i % IDENTITIES}`,
      contentHash: `${prefix}${i}`,
      source: `${prefix}${i}.jpg`,
      descriptor: v.map((x) => x / norm),
    };
  });
}

const META = { modelKey: 'synthetic', modelName: 'synthetic', dimension: DIM, precision: 'fp32' as const };

/** A new database with an initialized PostgreSQL gallery, closed when the test ends. */
async function freshStore(t: TestContext): Promise<{ name: string; url: string; store: PostgresStore }> {
  const { name, url } = await freshDatabase(t);
  const store = await PostgresStore.open(url);
  t.after(() => store.close());
  await store.initialize(META);
  return { name, url, store };
}

/** The approximate index's definition, as pg_indexes shows it. */
async function annIndexDefinition(database: string): Promise<string> {
  const rows = await adminQuery<{ indexdef: string }>(
    `SELECT indexdef FROM pg_indexes WHERE indexname = 'vggface_projected_hnsw'`,
    [],
    database,
  );
  return rows[0].indexdef;
}

async function scenario(
  t: TestContext,
  open: () => Promise<GalleryStore & { ensureAnnIndex: GalleryStore['ensureAnnIndex'] }>,
  projectedRows: () => Promise<number>,
): Promise<void> {
  const store = await open();
  t.after(() => store.close());
  await store.initialize(META);
  await store.add(faces(1, 1, 'one'));
  // One face: nothing to fit on; approximate search answers exactly.
  assert.equal(await store.ensureAnnIndex(), false);
  assert.equal(await store.hasAnnIndex(), false);
  assert.equal(
    (await store.search(faces(1, 1, 'one')[0].descriptor, { k: 1, metric: 'cosine', approximate: true }))[0].identity,
    'p0',
  );

  const gallery = faces(1200, 2, 'g');
  for (let s = 0; s < gallery.length; s += 300) await store.add(gallery.slice(s, s + 300));
  const stages = new Set<string>();
  assert.equal(await store.ensureAnnIndex({ components: 32, onProgress: (stage) => stages.add(stage) }), true);
  assert.deepEqual([...stages].sort(), ['fit', 'index', 'project', 'sample']);
  assert.equal(await store.hasAnnIndex(), true);
  assert.equal(await projectedRows(), 1201);

  const queries = faces(IDENTITIES, 3, 'q');
  let same = 0;
  for (const q of queries) {
    const exact = await store.search(q.descriptor, { k: 5, metric: 'cosine' });
    const approx = await store.search(q.descriptor, { k: 5, metric: 'cosine', approximate: true, candidates: 100 });
    assert.equal(approx[0].identity, q.identity);
    assert.equal(approx[0].identity, exact[0].identity);
    // Re-ranked exactly: the distances are the exact ones, not the projection's.
    assert.ok(Math.abs(approx[0].distance - exact[0].distance) < 1e-6, `${approx[0].distance} vs ${exact[0].distance}`);
    if (approx.every((m, i) => m.identity === exact[i].identity)) same++;
    for (const m of approx) assert.match(m.face.source, /^g\d+\.jpg$|^one0\.jpg$/);
  }
  assert.ok(same >= 0.95 * queries.length, `top 5 identical for ${same} of ${queries.length} queries`);

  // Added after the build: projected on the way in, found by approximate search.
  const late: NewFace = {
    identity: 'late',
    contentHash: 'late',
    source: 'late.jpg',
    descriptor: faces(1, 9, 'x')[0].descriptor.map((x, i) => (i % 2 ? x * 1.8 : x * 0.2)),
  };
  await store.add([late]);
  assert.equal(await projectedRows(), 1202);
  assert.equal(
    (await store.search(late.descriptor, { k: 1, metric: 'cosine', approximate: true }))[0].identity,
    'late',
  );
  assert.equal(await store.remove('late'), 1);
  assert.equal(await projectedRows(), 1201, 'removing an identity removes its projections');
  assert.notEqual(
    (await store.search(late.descriptor, { k: 1, metric: 'cosine', approximate: true }))[0].identity,
    'late',
  );

  // Another process opens the gallery: the projection is there, not built again.
  const other = await open();
  t.after(() => other.close());
  assert.equal(await other.hasAnnIndex(), true);
  assert.equal(await other.ensureAnnIndex(), false);
  assert.equal(
    (await other.search(queries[7].descriptor, { k: 1, metric: 'cosine', approximate: true }))[0].identity,
    queries[7].identity,
  );
}

test('SQLite gallery: approximate search through the projection index', async (t) => {
  const path = join(tempDir(t), 'g.db');
  let probe: SqliteStore | undefined;
  await scenario(
    t,
    () => SqliteStore.open(path, { create: true, threads: 1 }),
    async () => {
      probe ??= await SqliteStore.open(path, { create: false });
      return (probe as unknown as { db: { prepare(s: string): { pluck(): { get(): number } } } }).db
        .prepare('SELECT count(*) FROM projected')
        .pluck()
        .get();
    },
  );
  await probe?.close();
});

test(
  'SQLite gallery: a projection fitted on a small ' + 'gallery is fitted again once the gallery has doubled',
  async (t) => {
    const path = join(tempDir(t), 'g.db');
    const store = await SqliteStore.open(path, { create: true, threads: 1 });
    t.after(() => store.close());
    await store.initialize(META);
    await store.add(faces(10, 2, 'a'));
    assert.equal(await store.ensureAnnIndex(), true);
    assert.equal(await store.ensureAnnIndex(), false, 'not grown: kept');
    await store.add(faces(20, 4, 'b'));
    assert.equal(await store.ensureAnnIndex(), true, 'fitted on 10, now 30 faces: fitted again');
    assert.equal(await store.ensureAnnIndex({ sample: 10 }), false, 'fitted on the whole sample asked for: kept');
  },
);

test("SQLite gallery: an approximate search that names no candidates re-ranks 30 (the store's default)", async (t) => {
  const store = await SqliteStore.open(join(tempDir(t), 'g.db'), { create: true, threads: 1 });
  t.after(() => store.close());
  await store.initialize(META);
  await store.add(faces(400, 3, 'a'));
  const asked: number[] = [];
  const nearestRows = ProjectionIndex.prototype.nearestRows;
  ProjectionIndex.prototype.nearestRows = function (this: ProjectionIndex, query, count) {
    asked.push(count);
    return nearestRows.call(this, query, count);
  };
  t.after(() => {
    ProjectionIndex.prototype.nearestRows = nearestRows;
  });
  const probe = faces(1, 9, 'q')[0].descriptor;
  for (const candidates of [undefined, 70]) {
    const r = await store.search(probe, { k: 5, metric: 'cosine', approximate: true, candidates });
    assert.equal(r.length, 5);
  }
  assert.deepEqual(asked, [DEFAULT_CANDIDATES.sqlite, 70]);
  assert.equal(DEFAULT_CANDIDATES.sqlite, 30);
});

test('PostgreSQL gallery: approximate search through the projection HNSW index', { skip: PG_SKIP }, async (t) => {
  const { name, url } = await freshDatabase(t);
  await scenario(
    t,
    () => PostgresStore.open(url),
    async () => Number((await adminQuery<{ n: string }>('SELECT count(*) AS n FROM vggface_projected', [], name))[0].n),
  );
  const def = await annIndexDefinition(name);
  assert.match(
    def,
    // line-width: regex
    /USING hnsw \(\(\(subvector\(proj, 1, (\d+)\)\)::halfvec\(\1\)\) halfvec_l2_ops\) WITH \(m='16', ef_construction='200'\)$/,
  );
});

test('PostgreSQL gallery: the projection is fitted again once a small gallery has doubled', {
  skip: PG_SKIP,
}, async (t) => {
  const { name, store } = await freshStore(t);
  await store.add(faces(10, 2, 'a'));
  assert.equal(await store.ensureAnnIndex(), true);
  const fitted = async () =>
    (
      await adminQuery<{ n: number; c: number }>(
        'SELECT fitted_on AS n, components AS c FROM vggface_projection',
        [],
        name,
      )
    )[0];
  assert.deepEqual(await fitted(), { n: 10, c: 9 });
  await store.add(faces(20, 4, 'b'));
  assert.equal(await store.ensureAnnIndex(), true);
  assert.deepEqual(await fitted(), { n: 30, c: 29 });
  assert.equal(
    Number((await adminQuery<{ n: string }>('SELECT count(*) AS n FROM vggface_projected', [], name))[0].n),
    30,
  );
});

test('efSearch: at least 500 HNSW rows walked, 4 per candidate beyond 125, at most the 1000 pgvector allows', () => {
  assert.deepEqual([1, 10, 50, 125, 130, 220, 250, 1000].map(efSearch), [500, 500, 500, 500, 520, 880, 1000, 1000]);
});

test('PostgreSQL gallery: an approximate search sets hnsw.ef_search for its candidates', {
  skip: PG_SKIP,
}, async (t) => {
  const { store } = await freshStore(t);
  await store.add(faces(300, 3, 'a'));
  // Every statement the store sends, as the server receives it.
  const sent: string[] = [];
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string })?.text;
    if (text) sent.push(text);
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  t.after(() => {
    pg.Client.prototype.query = query;
  });
  const probe = faces(1, 9, 'q')[0].descriptor;
  for (const candidates of [30, 220, undefined]) {
    const r = await store.search(probe, { k: 5, metric: 'cosine', approximate: true, candidates });
    assert.equal(r.length, 5);
  }
  // No number means PostgreSQL's default, 50.
  const asked = [30, 220, DEFAULT_CANDIDATES.postgres];
  assert.deepEqual(
    sent.filter((s) => s.includes('hnsw.ef_search')),
    asked.map((c) => `SET LOCAL hnsw.ef_search = ${efSearch(c)}`),
  );
  // Each search takes the walk's rows (as many as hnsw.ef_search keeps) and re-ranks them by the whole projection down
  // to its candidates.
  const limits = sent.flatMap((s) =>
    [...s.matchAll(/LIMIT (\d+)\) w ORDER BY proj OPERATOR\(\S+\) \$3::\S+ LIMIT (\d+)\) c/g)].map((m) => [
      +m[1],
      +m[2],
    ]),
  );
  assert.deepEqual(
    limits,
    asked.map((c) => [efSearch(c), c]),
  );
  assert.equal(DEFAULT_CANDIDATES.postgres, 50);
});

test('PostgreSQL gallery: an index of an earlier layout is built again, and the search walks the index', {
  skip: PG_SKIP,
}, async (t) => {
  const { name, url, store } = await freshStore(t);
  await store.add(faces(300, 3, 'a'));
  assert.equal(await store.ensureAnnIndex(), true);
  // The layout of vggface 0.1 before this change: HNSW over the whole projection, which today's searches cannot use.
  await adminQuery('DROP INDEX vggface_projected_hnsw', [], name);
  await adminQuery(
    'CREATE INDEX vggface_projected_hnsw ON vggface_projected USING hnsw (proj vector_l2_ops)',
    [],
    name,
  );
  const other = await PostgresStore.open(url);
  t.after(() => other.close());
  assert.equal(await other.hasAnnIndex(), false, 'an index of an earlier layout is not the approximate index');
  assert.equal(await other.ensureAnnIndex(), true, 'built again');
  assert.equal(await other.ensureAnnIndex(), false, 'once');
  assert.equal(await other.hasAnnIndex(), true);
  // Built beside the old one under another name, which it took at the end: nothing else is left.
  assert.deepEqual(
    (
      await adminQuery<{ i: string }>(
        `SELECT indexname AS i FROM pg_indexes WHERE tablename = 'vggface_projected' ORDER BY 1`,
        [],
        name,
      )
    ).map((r) => r.i),
    ['vggface_projected_hnsw', 'vggface_projected_pkey'],
  );
  const def = await annIndexDefinition(name);
  assert.match(def, /subvector\(proj, 1, 128\)\)::halfvec\(128\)\) halfvec_l2_ops/);

  // The search as the store sends it, explained with sequential scans priced out: the walk's ORDER BY is the
  // indexed expression, so the plan walks the HNSW index (a mismatch would sort every projection instead).
  let searchSql: { text: string; values: unknown[] } | undefined;
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const config = args[0] as { text?: string; values?: unknown[] };
    if (config?.text?.includes('DISTINCT ON (identity)'))
      searchSql = { text: config.text, values: config.values ?? [] };
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  try {
    const probe = faces(1, 9, 'q')[0].descriptor;
    assert.equal((await other.search(probe, { k: 3, metric: 'cosine', approximate: true })).length, 3);
  } finally {
    pg.Client.prototype.query = query;
  }
  assert.ok(searchSql, 'the search was sent');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('SET enable_seqscan = off');
    const plan = (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${searchSql.text}`, searchSql.values)).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    assert.match(plan, /Index Scan using vggface_projected_hnsw on vggface_projected/, plan);
  } finally {
    await c.end();
  }
});
