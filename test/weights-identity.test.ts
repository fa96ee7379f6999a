/**
 * Issue 11: one identity per network. Every layout of ../shared/golden/tiny yields the same identity, converted models
 * record it, and calibrations and galleries key on it, while those keyed by the file's sha256 keep working.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildModel } from '../src/onnx/builder.js';
import { META } from '../src/onnx/contract.js';
import { convertWeightsToOnnx } from '../src/onnx/convert.js';
import { convertModel } from '../src/onnx/convert-model.js';
import { readOnnxInfo } from '../src/onnx/inspect.js';
import { cachedModelPath, resolveModel, type ModelInfo } from '../src/model/cache.js';
import { Gallery } from '../src/gallery/gallery.js';
import { SqliteStore } from '../src/gallery/sqlite-store.js';
import { sha256File } from '../src/util/hash.js';
import { loadCalibrations, resolveThreshold, saveCalibrations } from '../src/verify/thresholds.js';
import { isModelKey, modelIdentity } from '../src/model/identity.js';
import { readerFor, readWeights } from '../src/weights/formats.js';
import { weightsIdentity } from '../src/weights/identity.js';
import { reverseInputChannels } from '../src/weights/layout.js';
import { validateTopology } from '../src/weights/topology.js';
import type { WeightSet } from '../src/weights/types.js';
import { TINY_IDENTITY, TINY_LAYOUTS as LAYOUTS, calibration } from './fixtures/identity.js';
import { GOLDEN_DIR, tempDir } from './helpers.js';

const CAFFE = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const KERAS = join(GOLDEN_DIR, 'vgg_face_weights.h5');

test(
  'every layout of the golden network gets one identity, ' + 'whatever its channel order, dtype or container',
  async () => {
    const seen: Record<string, string> = {};
    const orders = new Set<string>();
    for (const file of LAYOUTS) {
      const { weights } = await readWeights(join(GOLDEN_DIR, file));
      seen[file] = weights.identity!;
      orders.add(weights.inputChannelOrder);
    }
    assert.deepEqual(seen, Object.fromEntries(LAYOUTS.map((f) => [f, TINY_IDENTITY])));
    assert.deepEqual([...orders].sort(), ['BGR', 'RGB'], 'both channel orders are among them');
    const files = readdirSync(GOLDEN_DIR)
      .filter((f) => !/\.(png|json|md)$/.test(f))
      .sort();
    assert.deepEqual(files, [...LAYOUTS].sort(), 'no layout of the golden folder is left out');
  },
);

test(
  'the identity is the canonical weights: channel order ' + 'declared, one changed value, a different network differ',
  async () => {
    const { weights } = await readWeights(CAFFE);
    assert.equal(weights.inputChannelOrder, 'BGR');
    assert.equal(weightsIdentity(weights), TINY_IDENTITY);
    // The same arrays read as RGB are another network (conv1_1 sees the channels reversed).
    const asRgb: WeightSet = { ...weights, inputChannelOrder: 'RGB' };
    assert.notEqual(weightsIdentity(asRgb), TINY_IDENTITY);
    // Reversing conv1_1 and declaring RGB is the same network again.
    const reordered: WeightSet = {
      ...asRgb,
      layers: weights.layers.map((l) => (l.name === 'conv1_1' ? { ...l, weight: reverseInputChannels(l.weight) } : l)),
    };
    assert.equal(weightsIdentity(reordered), TINY_IDENTITY);
    // One float of fc8's bias changed by one ulp is another network.
    const fc8 = weights.layers[15];
    const bias = Float32Array.from(fc8.bias.data);
    new Uint32Array(bias.buffer)[0] ^= 1;
    const changed: WeightSet = {
      ...weights,
      layers: [...weights.layers.slice(0, 15), { ...fc8, bias: { shape: fc8.bias.shape, data: bias } }],
    };
    assert.notEqual(weightsIdentity(changed), TINY_IDENTITY);
    // The mean a file records is not part of it (MatConvNet records one, the others do not).
    assert.equal(weightsIdentity({ ...weights, mean: [1, 2, 3] } as WeightSet), TINY_IDENTITY);
  },
);

test(
  'converted models record the identity (fp32, fp16, ' + 'int8): two layouts give two file hashes and one identity',
  async (t) => {
    const dir = tempDir(t);
    const a = await convertWeightsToOnnx(CAFFE, join(dir, 'a.onnx'), { preprocessing: 'caffe' });
    const b = await convertWeightsToOnnx(KERAS, join(dir, 'b.onnx'), { preprocessing: 'caffe', precision: 'fp16' });
    const c = await convertModel(KERAS, join(dir, 'c.onnx'), { preprocessing: 'deepface', precision: 'int8' });
    assert.deepEqual([a.identity, b.identity, c.identity], [TINY_IDENTITY, TINY_IDENTITY, TINY_IDENTITY]);
    const meta = (f: string) => readOnnxInfo(join(dir, f)).metadata;
    assert.deepEqual(
      ['a.onnx', 'b.onnx', 'c.onnx'].map((f) => meta(f)[META.identity]),
      [TINY_IDENTITY, TINY_IDENTITY, TINY_IDENTITY],
    );
    assert.equal(meta('a.onnx')[META.sha256], await sha256File(CAFFE));
    assert.equal(meta('b.onnx')[META.sha256], await sha256File(KERAS));
    assert.notEqual(await sha256File(CAFFE), await sha256File(KERAS));
  },
);

/** What a gallery and a calibration need of a model, without opening an ONNX Runtime session. */
async function model(weights: string, cacheDir: string, preprocessing: 'caffe' | 'deepface' = 'caffe') {
  const r = await resolveModel({ weights, cacheDir, preprocessing });
  return { modelPath: r.modelPath, info: r.info, dimension: () => r.info.topology.fc7, origin: r.origin };
}

test(
  'calibrations key on the identity: one made with the Caffe file applies to the ' +
    'Keras file; those keyed by file sha256 are still read',
  async (t) => {
    const cacheDir = tempDir(t);
    const caffe = await model(CAFFE, cacheDir);
    const keras = await model(KERAS, cacheDir);
    const idCaffe = await modelIdentity(caffe);
    const idKeras = await modelIdentity(keras);
    const caffeSha = await sha256File(CAFFE);
    assert.deepEqual(
      { sha256: idCaffe.sha256, key: idCaffe.key, legacyKeys: idCaffe.legacyKeys, name: idCaffe.name },
      {
        sha256: TINY_IDENTITY,
        key: `${TINY_IDENTITY}-caffe`,
        legacyKeys: [`${caffeSha}-caffe`],
        name: 'VGG_FACE.caffemodel',
      },
    );
    assert.equal(idKeras.key, idCaffe.key);
    assert.deepEqual(idKeras.legacyKeys, [`${await sha256File(KERAS)}-caffe`]);

    // A calibration stored before identities, under the Caffe file's sha256, is found for the Caffe model (not for the
    // Keras one, whose file differs).
    mkdirSync(join(cacheDir, 'thresholds'), { recursive: true });
    const legacy = join(cacheDir, 'thresholds', `${caffeSha}-caffe.json`);
    writeFileSync(
      legacy,
      JSON.stringify({
        model: { sha256: caffeSha, preprocessing: 'caffe', name: 'VGG_FACE.caffemodel' },
        thresholds: { cosine: calibration(0.25) },
      }),
    );
    assert.deepEqual(await resolveThreshold({ metric: 'cosine', cacheDir, identity: idCaffe }), {
      threshold: 0.25,
      metric: 'cosine',
      source: 'calibrated',
    });
    await assert.rejects(
      resolveThreshold({ metric: 'cosine', cacheDir, identity: idKeras }),
      /no calibrated cosine threshold/,
    );

    // Calibrating again moves it to the identity's key, keeping the other metric: now both layouts find both.
    const path = await saveCalibrations(cacheDir, idCaffe, [calibration(1.1, 'euclidean')]);
    assert.equal(path, join(cacheDir, 'thresholds', `${TINY_IDENTITY}-caffe.json`));
    assert.deepEqual(Object.keys(await loadCalibrations(cacheDir, idKeras)).sort(), ['cosine', 'euclidean']);
    assert.deepEqual(await resolveThreshold({ metric: 'euclidean', cacheDir, identity: idKeras }), {
      threshold: 1.1,
      metric: 'euclidean',
      source: 'calibrated',
    });
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).model.sha256, TINY_IDENTITY);
  },
);

test(
  'galleries key on the identity: filled with the Caffe file, opened with ' +
    'the Keras file; one keyed by file sha256 still opens',
  async (t) => {
    const dir = tempDir(t);
    const cacheDir = join(dir, 'cache');
    const caffe = await model(CAFFE, cacheDir);
    const keras = await model(KERAS, cacheDir);
    const vector = () => Float32Array.from({ length: 32 }, (_, i) => (i === 3 ? 1 : 0));

    const db = join(dir, 'g.db');
    const g1 = await Gallery.open(caffe, { db, create: true });
    await g1.addDescriptors('alice', [{ label: 'a.jpg', contentHash: 'a'.repeat(64), descriptor: vector() }]);
    assert.equal((await g1.store.meta())?.modelKey, `${TINY_IDENTITY}-caffe`);
    await g1.close();
    const g2 = await Gallery.open(keras, { db });
    assert.deepEqual(await g2.list(), [{ identity: 'alice', faces: 1 }]);
    await g2.close();

    // Bound, before identities, to the Caffe file's sha256.
    const old = join(dir, 'old.db');
    const store = await SqliteStore.open(old, { create: true });
    const caffeSha = await sha256File(CAFFE);
    await store.initialize({
      modelKey: `${caffeSha}-caffe`,
      modelName: 'VGG_FACE.caffemodel',
      dimension: 32,
      precision: 'fp32',
    });
    await store.close();
    const g3 = await Gallery.open(caffe, { db: old });
    await g3.addDescriptors('bob', [{ label: 'b.jpg', contentHash: 'b'.repeat(64), descriptor: vector() }]);
    assert.deepEqual(await g3.list(), [{ identity: 'bob', faces: 1 }]);
    await g3.close();
    assert.equal(
      isModelKey(await modelIdentity(keras), `${caffeSha}-caffe`),
      false,
      'the old key names the Caffe file only',
    );

    // Another preprocessing is another model.
    const deepface = await model(KERAS, cacheDir, 'deepface');
    await assert.rejects(
      Gallery.open(deepface, { db }),
      // line-width: regex
      /this gallery holds descriptors of model VGG_FACE\.caffemodel .*descriptors of different models cannot be compared/,
    );
  },
);

test('a cached conversion from before identities (no identity in its metadata) is converted again, once', async (t) => {
  const cacheDir = tempDir(t);
  const sha = await sha256File(CAFFE);
  // What an older vggface wrote: the same model without the identity key.
  const read = await readerFor('caffe').read(CAFFE, {});
  const topology = validateTopology(read);
  const cached = cachedModelPath(cacheDir, sha, 'caffe', 'fp32');
  mkdirSync(join(cacheDir, 'models'), { recursive: true });
  buildModel(read, topology, {
    preprocessing: 'caffe',
    sourceSha256: sha,
    sourceName: 'VGG_FACE.caffemodel',
  }).writeFileAtomic(cached);
  assert.equal(readOnnxInfo(cached).metadata[META.identity], undefined);

  const first = await resolveModel({ weights: CAFFE, cacheDir });
  assert.equal(first.origin, 'converted');
  assert.equal((first.info as ModelInfo).metadata[META.identity], TINY_IDENTITY);
  const second = await resolveModel({ weights: CAFFE, cacheDir });
  assert.equal(second.origin, 'cached');
  assert.equal(second.modelPath, cached);
});
