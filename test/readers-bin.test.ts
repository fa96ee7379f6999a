/**
 * The Torch7, MatConvNet and safetensors golden files (../shared/golden/tiny) reproduce the reference forward pass,
 * through the library and through the CLI, and are detected and described by content.
 */
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { detectFormat, readWeights } from '../src/weights/formats.js';
import { reverseInputChannels } from '../src/weights/layout.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';
import { assertGoldenCli, assertGoldenLibrary } from './weights-check.js';

const GOLDEN_FILES = [
  { file: 'VGG_FACE.t7', format: 'torch7', order: 'BGR', layout: /Torch7 binary, nn\.Sequential \(8-byte longs\)/ },
  {
    file: 'vgg-face.mat',
    format: 'matconvnet',
    order: 'RGB',
    layout: /MatConvNet SimpleNN, MAT-file v5 \(variables layers \+ meta, zlib-compressed/,
  },
  {
    file: 'vgg_face.mat',
    format: 'matconvnet',
    order: 'RGB',
    layout: /MatConvNet SimpleNN, MAT-file v5 \(struct net, zlib-compressed/,
  },
  { file: 'model.safetensors', format: 'safetensors', order: 'RGB', layout: /safetensors, vgg_face_dag names/ },
] as const;

for (const g of GOLDEN_FILES) {
  describe(`golden ${g.file}`, () => {
    it('is detected by content, also without its extension (library and vggface inspect)', async (t) => {
      assert.equal(await detectFormat(join(GOLDEN_DIR, g.file)), g.format);
      const bare = join(tempDir(t), 'weights');
      copyFileSync(join(GOLDEN_DIR, g.file), bare);
      assert.equal(await detectFormat(bare), g.format);
      const r = await runCli(['inspect', bare]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^format: +${g.format} \\(`, 'm'));
    });

    it('holds the same weights as the Caffe release, in its own channel order', async () => {
      const reference = (await readWeights(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'))).weights;
      const { weights } = await readWeights(join(GOLDEN_DIR, g.file));
      assert.equal(weights.inputChannelOrder, g.order);
      weights.layers.forEach((layer, i) => {
        const ref = reference.layers[i];
        const weight =
          i === 0 && g.order !== reference.inputChannelOrder ? reverseInputChannels(layer.weight) : layer.weight;
        assert.deepEqual(weight.shape, ref.weight.shape, layer.name);
        assert.deepEqual(weight.data, ref.weight.data, `${layer.name} weight`);
        assert.deepEqual(layer.bias.data, ref.bias.data, `${layer.name} bias`);
      });
    });

    it('reproduces golden.json fc6, fc7, fc8 and fc7_l2 through the library', (t) =>
      assertGoldenLibrary(t, join(GOLDEN_DIR, g.file)));

    it('gives the golden descriptors through `vggface describe --weights`, on a copy without extension', async (t) => {
      const bare = join(tempDir(t), 'weights');
      copyFileSync(join(GOLDEN_DIR, g.file), bare);
      await assertGoldenCli(t, bare);
    });

    it('is described by `vggface inspect` with its layout and channel order', async () => {
      const r = await runCli(['inspect', join(GOLDEN_DIR, g.file)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^format: +${g.format} \\(`, 'm'));
      assert.match(r.stdout, g.layout);
      assert.match(r.stdout, new RegExp(`^channel order: ${g.order} \\(what conv1_1 expects\\)$`, 'm'));
      assert.match(r.stdout, /^ {2}fc6 +fc +32x784 /m);
      const json = await runCli(['inspect', '--json', join(GOLDEN_DIR, g.file)]);
      const report = JSON.parse(json.stdout) as {
        format: string;
        inputChannelOrder: string;
        dtype: string;
        parameters: number;
        meanSource: string;
      };
      assert.equal(report.format, g.format);
      assert.equal(report.inputChannelOrder, g.order);
      assert.equal(report.dtype, 'float32');
      assert.equal(report.parameters, 42166);
      assert.equal(report.meanSource, g.format === 'matconvnet' ? 'file' : 'published');
    });
  });
}
