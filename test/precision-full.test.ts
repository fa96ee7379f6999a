// @tags: full-size
/**
 * The int8 model of the full-size network (random weights of the real dimensions): it loads, runs and stays close to
 * fp32.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFace } from '../src/vggface.js';
import { convertModel } from '../src/onnx/convert-model.js';
import { directoryCalibrationSet } from '../src/onnx/calibration-set.js';
import { cosineSimilarity } from '../src/distance/distance.js';
import { readOnnxInfo } from '../src/onnx/inspect.js';
import { randomWeights } from './fixtures/random-weights.js';
import { writeCaffeModel } from './fixtures/caffe-writer.js';
import { FACES_DIR, tempDir } from './helpers.js';
import { cpuFeatures, describeCpu } from '../src/runtime/cpu.js';

test('full-size int8 model: a quarter of the file, 4096-d unit descriptors, cosine >= 0.998 to fp32', async (t) => {
  const dir = tempDir(t);
  const caffemodel = join(dir, 'VGG_FACE_random.caffemodel');
  writeCaffeModel(caffemodel, randomWeights(), { version: 1 });
  const calib = join(dir, 'calib');
  mkdirSync(calib);
  for (const f of ['img3.jpg', 'img4.jpg']) copyFileSync(join(FACES_DIR, f), join(calib, f));
  const int8 = join(dir, 'int8.onnx');
  const report = await convertModel(caffemodel, int8, {
    preprocessing: 'caffe',
    precision: 'int8',
    calibrationSet: await directoryCalibrationSet(calib),
  });
  assert.equal(report.topology.fc7, 4096);
  const ratio = statSync(int8).size / statSync(caffemodel).size;
  assert.ok(ratio > 0.24 && ratio < 0.26, `int8 file is ${ratio} of the caffemodel`);
  assert.equal(readOnnxInfo(int8).metadata['vggface.precision'], 'int8');

  const images = ['img1.jpg', 'img2.jpg', 'img5.jpg'].map((f) => join(FACES_DIR, f));
  const describe = async (weights: string) => {
    const m = await VggFace.load({ weights });
    try {
      return {
        descriptors: await m.describe(images),
        fc7: await m.describe(images, { normalize: false }),
        precision: m.info.precision,
      };
    } finally {
      await m.close();
    }
  };
  const q = await describe(int8);
  assert.equal(q.precision, 'int8');
  for (const [i, d] of q.descriptors.entries()) {
    assert.equal(d.length, 4096);
    const norm = Math.hypot(...d);
    assert.ok(Math.abs(norm - 1) < 1e-5, `descriptor ${i} norm ${norm}`);
    // Random He-scaled weights keep fc7 alive: a good share of units fire, so fidelity measured on them means
    // something.
    const active = q.fc7[i].filter((v) => v > 0).length;
    assert.ok(active > 4096 * 0.2, `only ${active} of 4096 fc7 units are positive`);
  }

  const fp32 = join(dir, 'fp32.onnx');
  await convertModel(caffemodel, fp32, { preprocessing: 'caffe' });
  const f = await describe(fp32);
  // The goal is min 0.998 to fp32 on the face photos on every CPU kind. The -64..64 weights cannot saturate
  // any x86 kernel, so the int8 integers are the same with and without VNNI. Measured (AVX2 Zen 3): 0.99913, 0.99954,
  // 0.99939; builder 1's -127..127 weights gave 0.98946 at worst over the 64 face photos on that CPU.
  const cosines = f.descriptors.map((d, i) => cosineSimilarity(d, q.descriptors[i]));
  t.diagnostic(
    `int8 vs fp32 cosines: ${cosines.map((c) => c.toFixed(5)).join(', ')} (CPU ${describeCpu(cpuFeatures())})`,
  );
  cosines.forEach((c, i) =>
    assert.ok(c >= 0.998, `image ${i}: cosine ${c} between int8 and fp32 (CPU ${describeCpu(cpuFeatures())})`),
  );
  // The images differ from one another by much more than int8 differs from fp32.
  const between = cosineSimilarity(f.descriptors[0], f.descriptors[1]);
  assert.ok(
    1 - between > 10 * (1 - cosineSimilarity(f.descriptors[0], q.descriptors[0])),
    `cosine between images ${between}`,
  );
});
