// @tags: postgres
/**
 * Issue 11: galleries and calibrations made before network identities, keyed by the weight file's sha256. Reading
 * them (search, list, thresholds) works and writes nothing; the first write with a model of that network moves a
 * gallery's key to the identity (one guarded UPDATE), after which the same network from another layout opens it.
 * SQLite here; PostgreSQL against the real test server (test/fixtures/postgres.ts: $VGGFACE_TEST_PG_URL, or one it
 * starts).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Gallery } from '../src/gallery/gallery.js';
import { PostgresStore } from '../src/gallery/postgres-store.js';
import { SqliteStore } from '../src/gallery/sqlite-store.js';
import type { GalleryStore } from '../src/gallery/types.js';
import { resolveModel } from '../src/model/cache.js';
import { sha256File } from '../src/util/hash.js';
import { loadCalibrations, resolveThreshold, saveCalibrations } from '../src/verify/thresholds.js';
import { modelIdentity } from '../src/model/identity.js';
import { adminQuery, freshDatabase, PG_SKIP } from './fixtures/postgres.js';
import { TINY_IDENTITY, calibration } from './fixtures/identity.js';
import { GOLDEN_DIR, tempDir } from './helpers.js';

const CAFFE = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const KERAS = join(GOLDEN_DIR, 'vgg_face_weights.h5');
const NEW_KEY = `${TINY_IDENTITY}-caffe`;

/** What a gallery and a calibration need of a model, without an ONNX Runtime session. */
async function model(weights: string, cacheDir: string) {
  const r = await resolveModel({ weights, cacheDir, preprocessing: 'caffe' });
  return { modelPath: r.modelPath, info: r.info, dimension: () => r.info.topology.fc7 };
}

/** A unit vector along axis `i` of the tiny network's 32-d descriptor. */
const axis = (i: number) => Float32Array.from({ length: 32 }, (_, j) => (j === i ? 1 : 0));

/**
 * Nearest identities to axis 3 as [identity, cosine distance, source]: alice's face lies on it, bob's is orthogonal.
 */
async function nearest(g: Gallery<Awaited<ReturnType<typeof model>>>): Promise<[string, number, string][]> {
  const r = await g.searchDescriptor(axis(3), { k: 5, metric: 'cosine', threshold: 0.5 });
  return r.matches.map((m) => [m.identity, Math.round(m.distance * 1e6) / 1e6, m.face.source]);
}

/**
 * The same story for either store: `make` creates a gallery bound to `oldKey` holding alice's face; `key` reads
 * the stored model key straight from the database.
 */
async function rekeyStory(
  t: { after(fn: () => Promise<void> | void): void },
  db: string,
  make: (oldKey: string) => Promise<GalleryStore>,
  key: () => Promise<string>,
) {
  const cacheDir = tempDir(t);
  const caffe = await model(CAFFE, cacheDir);
  const keras = await model(KERAS, cacheDir);
  const oldKey = `${await sha256File(CAFFE)}-caffe`;
  assert.notEqual(oldKey, NEW_KEY);
  const store = await make(oldKey);
  assert.equal(await store.rekey(`${'0'.repeat(64)}-caffe`, NEW_KEY), false, 'another old key: nothing changed');
  assert.equal(await key(), oldKey);
  await store.close();

  // The Keras file is the same network, but the old key names the Caffe file only.
  await assert.rejects(
    Gallery.open(keras, { db }),
    // line-width: regex
    /this gallery holds descriptors of model VGG_FACE\.caffemodel \([0-9a-f]{12}\.\.\., 32-d\); the loaded model is vgg_face_weights\.h5 \(7295bdd4c5cf\.\.\., 32-d\)/,
  );

  // Reading with the Caffe model: searchable, listed, and the key untouched.
  const g = await Gallery.open(caffe, { db });
  assert.deepEqual(await nearest(g), [['alice', 0, 'alice.jpg']]);
  assert.deepEqual(await g.list(), [{ identity: 'alice', faces: 1 }]);
  assert.equal(await key(), oldKey, 'search and list do not rewrite the key');

  // Writing moves it to the identity; the old face and the new one are both found.
  const added = await g.addDescriptors('bob', [{ label: 'bob.jpg', contentHash: 'b'.repeat(64), descriptor: axis(7) }]);
  assert.deepEqual(added, [{ index: 0, label: 'bob.jpg', status: 'added' }]);
  assert.equal(await key(), NEW_KEY);
  assert.equal((await g.store.meta())?.modelKey, NEW_KEY);
  assert.deepEqual(await nearest(g), [
    ['alice', 0, 'alice.jpg'],
    ['bob', 1, 'bob.jpg'],
  ]);
  assert.equal(await g.store.rekey(oldKey, NEW_KEY), false, 'already moved: a second rekey changes nothing');
  await g.close();

  // Now another layout of the network opens it and writes to it, and the Caffe model still reads what it wrote.
  const viaKeras = await Gallery.open(keras, { db });
  assert.deepEqual(await nearest(viaKeras), [
    ['alice', 0, 'alice.jpg'],
    ['bob', 1, 'bob.jpg'],
  ]);
  await viaKeras.addDescriptors('carol', [{ label: 'carol.jpg', contentHash: 'c'.repeat(64), descriptor: axis(9) }]);
  assert.equal(await key(), NEW_KEY);
  await viaKeras.close();
  const viaCaffe = await Gallery.open(caffe, { db });
  assert.deepEqual(await nearest(viaCaffe), [
    ['alice', 0, 'alice.jpg'],
    ['bob', 1, 'bob.jpg'],
    ['carol', 1, 'carol.jpg'],
  ]);
  await viaCaffe.close();
}

test(
  'a SQLite gallery keyed by the file sha256 is searched ' + 'as it is, and rekeyed to the identity on the first add',
  async (t) => {
    const dir = tempDir(t);
    const db = join(dir, 'old.db');
    await rekeyStory(
      t,
      db,
      async (oldKey) => {
        const store = await SqliteStore.open(db, { create: true });
        await store.initialize({
          modelKey: oldKey,
          modelName: 'VGG_FACE.caffemodel',
          dimension: 32,
          precision: 'fp32',
        });
        await store.add([{ identity: 'alice', contentHash: 'a'.repeat(64), source: 'alice.jpg', descriptor: axis(3) }]);
        return store;
      },
      async () => {
        const s = await SqliteStore.open(db, { create: false });
        try {
          return (await s.meta())!.modelKey;
        } finally {
          await s.close();
        }
      },
    );
  },
);

test('SqliteStore.rekey on a file with no gallery schema yet changes nothing', async (t) => {
  const store = await SqliteStore.open(join(tempDir(t), 'new.db'), { create: true });
  t.after(() => store.close());
  assert.equal(await store.rekey('a', 'b'), false);
  assert.equal(await store.meta(), undefined);
});

test('a PostgreSQL gallery keyed by the file sha256 is searched ' +
  'as it is, and rekeyed to the identity on the first add', {
  skip: PG_SKIP,
}, async (t) => {
  const { name, url } = await freshDatabase(t);
  await rekeyStory(
    t,
    url,
    async (oldKey) => {
      const store = await PostgresStore.open(url);
      await store.initialize({ modelKey: oldKey, modelName: 'VGG_FACE.caffemodel', dimension: 32, precision: 'fp32' });
      await store.add([{ identity: 'alice', contentHash: 'a'.repeat(64), source: 'alice.jpg', descriptor: axis(3) }]);
      return store;
    },
    async () => {
      const rows = await adminQuery<{ value: string }>(
        `SELECT value FROM vggface_meta WHERE key = 'model_key'`,
        [],
        name,
      );
      assert.equal(rows.length, 1);
      return rows[0].value;
    },
  );
});

test(
  'calibrations keyed by the file sha256: read without writing; the next calibration ' +
    'writes them under the identity, the old file left as it was',
  async (t) => {
    const cacheDir = tempDir(t);
    const caffe = await modelIdentity(await model(CAFFE, cacheDir));
    const keras = await modelIdentity(await model(KERAS, cacheDir));
    const caffeSha = await sha256File(CAFFE);
    const dir = join(cacheDir, 'thresholds');
    mkdirSync(dir, { recursive: true });
    const legacy = join(dir, `${caffeSha}-caffe.json`);
    const legacyText = JSON.stringify({
      model: { sha256: caffeSha, preprocessing: 'caffe', name: 'VGG_FACE.caffemodel' },
      thresholds: { cosine: calibration(0.25, 'cosine') },
    });
    writeFileSync(legacy, legacyText);

    assert.deepEqual(await resolveThreshold({ metric: 'cosine', cacheDir, identity: caffe }), {
      threshold: 0.25,
      metric: 'cosine',
      source: 'calibrated',
    });
    assert.deepEqual(readdirSync(dir), [`${caffeSha}-caffe.json`], 'reading wrote nothing');

    await saveCalibrations(cacheDir, caffe, [calibration(1.1, 'euclidean')]);
    assert.deepEqual(readdirSync(dir).sort(), [`${caffeSha}-caffe.json`, `${NEW_KEY}.json`].sort());
    assert.equal(
      readFileSync(legacy, 'utf8'),
      legacyText,
      'the old file is left for an older vggface sharing the cache',
    );
    const moved = JSON.parse(readFileSync(join(dir, `${NEW_KEY}.json`), 'utf8'));
    assert.deepEqual(
      {
        model: moved.model,
        cosine: moved.thresholds.cosine.threshold,
        euclidean: moved.thresholds.euclidean.threshold,
      },
      {
        model: { sha256: TINY_IDENTITY, preprocessing: 'caffe', name: 'VGG_FACE.caffemodel' },
        cosine: 0.25,
        euclidean: 1.1,
      },
    );

    // The identity's file is read first: a new cosine calibration made with the Keras file applies to the Caffe model
    // too.
    await saveCalibrations(cacheDir, keras, [calibration(0.3, 'cosine')]);
    assert.deepEqual(await resolveThreshold({ metric: 'cosine', cacheDir, identity: caffe }), {
      threshold: 0.3,
      metric: 'cosine',
      source: 'calibrated',
    });
    assert.deepEqual(
      Object.fromEntries(Object.entries(await loadCalibrations(cacheDir, caffe)).map(([k, v]) => [k, v!.threshold])),
      { cosine: 0.3, euclidean: 1.1 },
    );
  },
);
