// @tags: full-size
/**
 * Issue 3: the three HDF5 layouts (deepface's Keras weights, keras-vggface's full model, the article's file) through
 * h5wasm: golden numbers, the same weights as the Caffe release, round trips through the project's writers (float32,
 * float64, real dimensions), detection by content, and clear errors for truncated, corrupt and wrong-topology files.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFace } from '../src/vggface.js';
import { detectFormat, readWeights } from '../src/weights/formats.js';
import { sniffHdf5 } from '../src/weights/hdf5.js';
import { FULL_WIDTHS } from '../src/weights/topology.js';
import type { WeightSet } from '../src/weights/types.js';
import {
  writeHdf5Article,
  writeKerasDeepface,
  writeKerasVggface,
  type Hdf5WriteOptions,
} from './fixtures/hdf5-writers.js';
import { randomWeights, TINY_WIDTHS } from './fixtures/random-weights.js';
import { assertClose, golden, GOLDEN_DIR, GOLDEN_IMAGES, tempDir } from './helpers.js';
import { assertSameWeights } from './fixtures/compare-weights.js';
import { assertGoldenCli, assertGoldenLibrary, assertInspect, expectCliError } from './weights-check.js';

interface Layout {
  readonly file: string;
  readonly format: string;
  readonly layout: RegExp;
  readonly write: (path: string, w: WeightSet, o?: Hdf5WriteOptions) => Promise<void>;
}

const LAYOUTS: readonly Layout[] = [
  {
    file: 'vgg_face_weights.h5',
    format: 'keras-deepface',
    layout: /Keras save_weights layout.*fc layers stored as Conv2D/,
    write: writeKerasDeepface,
  },
  {
    file: 'rcmalli_vggface_tf_vgg16.h5',
    format: 'keras-vggface',
    layout: /Keras full-model layout \(model_weights\/\).*Dense over a channels-last Flatten/,
    write: writeKerasVggface,
  },
  { file: 'vgg_face.h5', format: 'hdf5-article', layout: /article's HDF5 layout/, write: writeHdf5Article },
];

/** True when some dataset in the file goes through the deflate filter (HDF5 filter id 1). */
async function hasDeflatedDatasets(path: string): Promise<boolean> {
  const lib = await import('h5wasm/node');
  await lib.ready;
  const f = new lib.File(path, 'r');
  try {
    return f.paths().some((p) => {
      const e = f.get(p);
      return e instanceof lib.Dataset && e.filters.some((x) => x.id === 1);
    });
  } finally {
    f.close();
  }
}

for (const l of LAYOUTS) {
  const golden = join(GOLDEN_DIR, l.file);

  test(`${l.file}: library reproduces golden fc6, fc7, fc8 and fc7_l2`, async (t) => {
    await assertGoldenLibrary(t, golden);
  });

  test(
    `${l.file}: CLI describe --weights reproduces golden ` + `fc7_l2; inspect names ${l.format}, its layout and BGR`,
    async (t) => {
      await assertGoldenCli(t, golden);
      await assertInspect(golden, l.format, l.layout, 'BGR');
    },
  );

  test(`${l.file}: holds exactly the weights of the golden caffemodel`, async () => {
    const caffe = await readWeights(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'));
    const ours = await readWeights(golden);
    assert.equal(ours.format, l.format);
    assert.equal(ours.weights.inputChannelOrder, 'BGR');
    assertSameWeights(ours.weights, caffe.weights, l.file);
  });

  for (const variant of [
    { name: 'float32, BGR weights', double: false, order: 'BGR' as const },
    { name: 'float64, RGB weights', double: true, order: 'RGB' as const },
    { name: 'chunked gzip datasets', double: false, order: 'BGR' as const, gzip: true },
  ]) {
    test(
      `${l.format}: round trip through the fixture writer ` +
        `(${variant.name}), detected by content under another name`,
      async (t) => {
        const w = randomWeights(TINY_WIDTHS, 21, variant.order);
        const path = join(tempDir(t), 'weights.bin');
        await l.write(path, w, { double: variant.double, gzip: variant.gzip });
        assert.equal(await detectFormat(path), l.format);
        if (variant.gzip) assert.ok(await hasDeflatedDatasets(path), 'the writer made deflate-filtered datasets');
        const { weights, format, topology } = await readWeights(path);
        assert.equal(format, l.format);
        assert.equal(weights.sourceDtype, variant.double ? 'float64' : 'float32');
        assert.equal(weights.inputChannelOrder, 'BGR');
        assert.deepEqual(topology.conv, TINY_WIDTHS.conv);
        assertSameWeights(weights, w, `${l.format} ${variant.name}`);
      },
    );
  }

  test(`${l.format}: real VGG-Face dimensions written and read back exactly`, async (t) => {
    const w = randomWeights(FULL_WIDTHS, 5);
    const path = join(tempDir(t), l.file);
    await l.write(path, w);
    const { weights, topology } = await readWeights(path);
    assert.deepEqual(topology.conv, [...FULL_WIDTHS.conv]);
    assert.deepEqual([topology.fc6, topology.fc7, topology.fc8], [4096, 4096, 2622]);
    assert.equal(topology.parameters, 145_002_878);
    assertSameWeights(weights, w, `${l.format} full size`);
  });
}

test('deepface preprocessing on vgg_face_weights.h5 reproduces golden deepface_fc7_l2', async (t) => {
  const model = await VggFace.load({
    weights: join(GOLDEN_DIR, 'vgg_face_weights.h5'),
    cacheDir: tempDir(t),
    preprocessing: 'deepface',
  });
  t.after(() => model.close());
  for (const img of GOLDEN_IMAGES) {
    assertClose(
      await model.describe(join(GOLDEN_DIR, img)),
      golden.images[img].deepface_fc7_l2,
      1e-4,
      `${img} deepface`,
    );
  }
});

test('sniffing: the HDF5 signature at 0 or after a user block; other bytes are not HDF5', () => {
  const head = readFileSync(join(GOLDEN_DIR, 'vgg_face.h5')).subarray(0, 4096);
  assert.equal(sniffHdf5(head), true);
  const withUserBlock = Buffer.alloc(1024 + 8);
  withUserBlock.write('MATLAB 7.3 MAT-file', 0, 'latin1');
  head.copy(withUserBlock, 512, 0, 8);
  assert.equal(sniffHdf5(withUserBlock), true);
  assert.equal(sniffHdf5(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1')), false);
  assert.equal(sniffHdf5(readFileSync(join(GOLDEN_DIR, 'vgg_face_dag.pth')).subarray(0, 4096)), false);
});

test("a layout forced with --format on another layout's file is refused clearly", async () => {
  const deepface = join(GOLDEN_DIR, 'vgg_face_weights.h5');
  await expectCliError(
    ['inspect', '--format', 'keras-vggface', deepface],
    1,
    /vgg_face_weights\.h5: no attribute layer_names on model_weights: not a Keras full-model file/,
  );
  await expectCliError(
    ['inspect', '--format', 'hdf5-article', deepface],
    1,
    // line-width: regex
    /vgg_face_weights\.h5: missing data\/conv1_1_w, data\/conv1_1_b, .*the article's layout has data\/<layer>_w and data\/<layer>_b/,
  );
  await expectCliError(
    ['inspect', '--format', 'keras-deepface', join(GOLDEN_DIR, 'vgg_face.h5')],
    1,
    /vgg_face\.h5: no root attribute layer_names: not a Keras save_weights file/,
  );
  await expectCliError(
    ['inspect', '--format', 'keras-deepface', join(GOLDEN_DIR, 'vgg_face_dag.pth')],
    1,
    /vgg_face_dag\.pth: not a readable HDF5 file: .*signature/,
  );
});

test('truncated and corrupt HDF5 files give clear errors, detected or forced', async (t) => {
  const dir = tempDir(t);
  const good = readFileSync(join(GOLDEN_DIR, 'vgg_face_weights.h5'));
  const truncated = join(dir, 'truncated.h5');
  writeFileSync(truncated, good.subarray(0, Math.floor(good.length / 2)));
  const half = Math.floor(good.length / 2);
  await expectCliError(
    ['inspect', truncated],
    1,
    new RegExp(
      'truncated\\.h5: its signature matches keras-deepface, keras-vggface, hdf5-article but its structure ' +
        `matches none of them: not a readable HDF5 file: truncated file: eof = ${half}`,
    ),
  );
  await expectCliError(
    ['convert', '--format', 'keras-deepface', truncated, '-o', join(dir, 'x.onnx')],
    1,
    /truncated\.h5: not a readable HDF5 file: truncated file: eof = \d+, .*stored_eof = 241768/,
  );
  const corrupt = join(dir, 'corrupt.h5');
  const bad = Buffer.from(good);
  bad.fill(0, 8, 40); // superblock: version, sizes, addresses
  writeFileSync(corrupt, bad);
  await expectCliError(
    ['describe', '--detector', 'none', '--weights', corrupt, join(GOLDEN_DIR, 'img1.png')],
    1,
    /corrupt\.h5: its signature matches .* but its structure matches none of them: not a readable HDF5 file: /,
    {
      VGGFACE_CACHE: join(dir, 'cache'),
    },
  );
  const onlySignature = join(dir, 'signature.h5');
  writeFileSync(onlySignature, good.subarray(0, 8));
  await expectCliError(
    ['inspect', onlySignature],
    1,
    /signature\.h5: its signature matches .*: not a readable HDF5 file/,
  );
});

test('an HDF5 file of another structure matches none of the layouts and says what it holds', async (t) => {
  const lib = await import('h5wasm/node');
  await lib.ready;
  const path = join(tempDir(t), 'other.h5');
  const f = new lib.File(path, 'w');
  f.create_group('measurements').create_dataset({ name: 'x', data: new Float32Array([1, 2, 3]) });
  f.close();
  await expectCliError(
    ['inspect', path],
    1,
    // line-width: regex
    /other\.h5: its signature matches keras-deepface, keras-vggface, hdf5-article but its structure matches none of them: no root attribute layer_names \(an HDF5 file whose root holds measurements\); no group model_weights .*; no group data/,
  );
});

test(
  'wrong topology: a missing layer, and fc6 reading the ' + 'wrong number of inputs, name the layer and the shapes',
  async (t) => {
    const dir = tempDir(t);
    const w = randomWeights(TINY_WIDTHS, 9);
    const env = { VGGFACE_CACHE: join(dir, 'cache') };
    const p = (name: string) => join(dir, name);

    await writeKerasDeepface(p('deepface-missing.h5'), w, { omit: 'conv3_2' });
    await expectCliError(
      ['inspect', p('deepface-missing.h5')],
      1,
      // line-width: regex
      /deepface-missing\.h5: VGG-Face has 13 conv layers then 3 fc layers with weights, file has 15 layers with weights: conv2d_1 \(kernel 3x3x3x4\), .*conv2d_5 \(kernel 3x3x8x8\), conv2d_7 \(kernel 3x3x8x8\), .*conv2d_16 \(kernel 1x1x32x10\)/,
    );
    await writeKerasVggface(p('vggface-missing.h5'), w, { omit: 'fc7' });
    await expectCliError(
      ['inspect', p('vggface-missing.h5')],
      1,
      /file has 15 layers with weights: .*fc6 \(kernel 784x32\), fc8 \(kernel 32x10\)/,
    );
    await writeHdf5Article(p('article-missing.h5'), w, { omit: 'conv5_1' });
    await expectCliError(
      ['inspect', p('article-missing.h5')],
      1,
      /article-missing\.h5: missing data\/conv5_1_w, data\/conv5_1_b/,
    );

    // fc6 over 8 channels instead of conv5_3's 16: 392 inputs instead of 784.
    await writeKerasDeepface(p('deepface-fc6.h5'), w, {
      replaceKernel: { layer: 'fc6', shape: [7, 7, 8, 32], data: new Float32Array(7 * 7 * 8 * 32) },
    });
    await expectCliError(
      ['convert', p('deepface-fc6.h5'), '-o', p('a.onnx')],
      1,
      // line-width: regex
      /deepface-fc6\.h5: fc6 \(conv2d_14\): expects 784 inputs = 16x7x7 from pool5 \(conv5_3 has 16 channels\), file has 392 \(kernel 7x7x8x32\)/,
      env,
    );
    await writeKerasDeepface(p('deepface-fc6-1x1.h5'), w, {
      replaceKernel: { layer: 'fc6', shape: [1, 1, 784, 32], data: new Float32Array(784 * 32) },
    });
    await expectCliError(
      ['inspect', p('deepface-fc6-1x1.h5')],
      1,
      /fc6 \(conv2d_14\): fc layer stored as a conv must be a 7x7x16xN conv over pool5, file has kernel 1x1x784x32/,
    );
    await writeKerasVggface(p('vggface-fc6.h5'), w, {
      replaceKernel: { layer: 'fc6', shape: [4096, 32], data: new Float32Array(4096 * 32) },
    });
    await expectCliError(
      ['describe', '--detector', 'none', '--weights', p('vggface-fc6.h5'), join(GOLDEN_DIR, 'img1.png')],
      1,
      // line-width: regex
      /vggface-fc6\.h5: fc6 \(fc6\): expects 784 inputs = 16x7x7 from pool5 \(conv5_3 has 16 channels\), file has 4096 \(kernel 4096x32\)/,
      env,
    );
    await writeHdf5Article(p('article-fc6.h5'), w, {
      replaceKernel: { layer: 'fc6', shape: [512, 32], data: new Float32Array(512 * 32) },
    });
    await expectCliError(
      ['inspect', p('article-fc6.h5')],
      1,
      // line-width: regex
      /article-fc6\.h5: fc6 \(data\/fc6_w\): expects 784 inputs = 16x7x7 from pool5 \(conv5_3 has 16 channels\), file has 512 \(kernel 512x32\)/,
    );

    // fc7 reading 16 inputs from a 32-wide fc6: the shared topology check names both.
    await writeHdf5Article(p('article-fc7.h5'), w, {
      replaceKernel: { layer: 'fc7', shape: [16, 32], data: new Float32Array(16 * 32) },
    });
    await expectCliError(['inspect', p('article-fc7.h5')], 1, /fc7: expects 32 inputs from fc6, file has 16/);
    // A conv kernel that is not 4-D.
    await writeHdf5Article(p('article-conv.h5'), w, {
      replaceKernel: { layer: 'conv2_2', shape: [72, 8], data: new Float32Array(72 * 8) },
    });
    await expectCliError(
      ['inspect', p('article-conv.h5')],
      1,
      /conv2_2 \(data\/conv2_2_w\): conv kernel \/data\/conv2_2_w must be 4-D \(kh, kw, in, out\), file has 72x8/,
    );
  },
);

test('a dataset that is not float32 or float64 is refused with its name', async (t) => {
  const w = randomWeights(TINY_WIDTHS, 4);
  const path = join(tempDir(t), 'ints.h5');
  await writeHdf5Article(path, w, { omit: 'fc8' });
  const lib = await import('h5wasm/node');
  await lib.ready;
  const f = new lib.File(path, 'a');
  const data = f.get('data') as InstanceType<typeof lib.Group>;
  data.create_dataset({ name: 'fc8_w', data: new Int32Array(32 * 10), shape: [32, 10] });
  data.create_dataset({ name: 'fc8_b', data: new Float32Array(10) });
  f.close();
  await expectCliError(
    ['inspect', path],
    1,
    /ints\.h5: dataset \/data\/fc8_w holds a non-float type \(HDF5 class 0, 4 bytes\); expected float32 or float64/,
  );
});

test('a file copied under a misleading extension is still read by content', async (t) => {
  const path = join(tempDir(t), 'model.caffemodel');
  copyFileSync(join(GOLDEN_DIR, 'rcmalli_vggface_tf_vgg16.h5'), path);
  assert.equal(await detectFormat(path), 'keras-vggface');
});
