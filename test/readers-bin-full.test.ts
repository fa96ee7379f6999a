// @tags: full-size
/**
 * The Torch7, MatConvNet and safetensors writers and readers at the real VGG-Face dimensions (145M parameters):
 * one random weight set is written in each layout and read back; shapes and sampled values must match exactly.
 */
import assert from 'node:assert/strict';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readWeights } from '../src/weights/formats.js';
import { isFullSize } from '../src/weights/topology.js';
import type { WeightSet } from '../src/weights/types.js';
import { writeMatConvNet } from './fixtures/matconvnet-writer.js';
import { randomWeights } from './fixtures/random-weights.js';
import { writeSafetensors } from './fixtures/safetensors-writer.js';
import { writeTorch7 } from './fixtures/torch7-writer.js';
import { tempDir } from './helpers.js';

const FULL_PARAMETERS = 145_002_878;

/**
 * Compares shapes and ~2000 values spread over every tensor (a full comparison of 145M values is the tiny tests' job).
 */
function assertSampledEqual(actual: WeightSet, expected: WeightSet): void {
  actual.layers.forEach((layer, i) => {
    const ref = expected.layers[i];
    assert.equal(layer.name, ref.name);
    assert.deepEqual(layer.weight.shape, ref.weight.shape, `${ref.name} weight shape`);
    assert.deepEqual(layer.bias.shape, ref.bias.shape, `${ref.name} bias shape`);
    for (const [what, a, b] of [
      ['weight', layer.weight.data, ref.weight.data],
      ['bias', layer.bias.data, ref.bias.data],
    ] as const) {
      const step = Math.max(1, Math.floor(b.length / 1000));
      for (let k = 0; k < b.length; k += step) assert.equal(a[k], b[k], `${ref.name} ${what}[${k}]`);
      assert.equal(a[b.length - 1], b[b.length - 1], `${ref.name} ${what} last value`);
    }
  });
}

describe('Torch7, MatConvNet and safetensors at the real dimensions', () => {
  const bgr = randomWeights(undefined, 11, 'BGR');
  const rgb: WeightSet = { ...bgr, inputChannelOrder: 'RGB' }; // conv1_1 is then compared as-is for the RGB layouts
  const cases = [
    { name: 'VGG_FACE.t7', weights: bgr, write: (p: string) => writeTorch7(p, bgr) },
    { name: 'vgg-face.mat', weights: rgb, write: (p: string) => writeMatConvNet(p, rgb, { level: 0 }) },
    { name: 'vgg_face.mat', weights: rgb, write: (p: string) => writeMatConvNet(p, rgb, { variant: 'net', level: 0 }) },
    { name: 'model.safetensors', weights: rgb, write: (p: string) => writeSafetensors(p, rgb) },
  ];
  for (const c of cases) {
    it(`writes and reads ${c.name} with 145M parameters`, async (t) => {
      const path = join(tempDir(t), c.name);
      await c.write(path);
      assert.ok(statSync(path).size > 145_000_000 * 4 * 0.9, 'the file holds the weights');
      const { weights, topology } = await readWeights(path);
      rmSync(path);
      assert.ok(isFullSize(topology));
      assert.equal(topology.parameters, FULL_PARAMETERS);
      assert.equal(weights.inputChannelOrder, c.weights.inputChannelOrder);
      assert.deepEqual(weights.layers[13].weight.shape, [4096, 25088]);
      assertSampledEqual(weights, c.weights);
    });
  }
});
