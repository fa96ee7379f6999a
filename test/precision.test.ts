/**
 * fp16 and int8 models of the tiny golden network: accuracy against golden.json, metadata, the model cache,
 * and the errors of bad precision/calibration flags.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFace } from '../src/vggface.js';
import type { VggFaceError } from '../src/errors.js';
import { readOnnxInfo } from '../src/onnx/inspect.js';
import { convertModel } from '../src/onnx/convert-model.js';
import { builtinCalibrationSet, directoryCalibrationSet } from '../src/onnx/calibration-set.js';
import { cosineSimilarity } from '../src/distance/distance.js';
import { calibratedTensors } from '../src/onnx/quantize.js';
import { sha256File } from '../src/util/hash.js';
import { openEngine } from '../src/runtime/onnxruntime.js';
import { cpuFeatures, describeCpu, int8PairsSaturate } from '../src/runtime/cpu.js';
import { loadSquare } from '../src/image/decode.js';
import { assertClose, FACES_DIR, GOLDEN_DIR, GOLDEN_IMAGES, golden, runCli, tempDir } from './helpers.js';

const CAFFEMODEL = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const images = GOLDEN_IMAGES.map((i) => join(GOLDEN_DIR, i));

async function outputs(model: string, preprocessing?: 'caffe' | 'deepface') {
  const m = await VggFace.load({ weights: model, preprocessing });
  try {
    const descriptors = await m.describe(images);
    const fc8 = await m.describe(images, { layer: 'fc8', normalize: false });
    return { descriptors, fc8, precision: m.info.precision };
  } finally {
    await m.close();
  }
}

test('fp16 tiny model: golden descriptors and fc8 within 3e-3 relative', async (t) => {
  // float16 keeps 11 significant bits: each weight is off by up to 2^-11 = 4.9e-4 relative. Through 16 layers the
  // independent errors add up to about sqrt(16) x 4.9e-4 = 2e-3 of the output's scale (measured: 1.5e-3 at most).
  const dir = tempDir(t);
  const out = join(dir, 'tiny-fp16.onnx');
  const r = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'fp16', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).precision, 'fp16');
  await convertModel(CAFFEMODEL, join(dir, 'tiny-fp32.onnx'), { preprocessing: 'caffe' });
  const ratio = statSync(out).size / statSync(join(dir, 'tiny-fp32.onnx')).size;
  // weights halve; the graph adds a little
  assert.ok(ratio > 0.5 && ratio < 0.56, `fp16 file is ${ratio} of the fp32 file`);
  const { descriptors, fc8, precision } = await outputs(out);
  assert.equal(precision, 'fp16');
  GOLDEN_IMAGES.forEach((name, i) => {
    assertClose(descriptors[i], golden.images[name].fc7_l2, 3e-3, `${name} descriptor`);
    assertClose(fc8[i], golden.images[name].fc8, 3e-3, `${name} fc8`);
  });
});

test(
  'int8 tiny model: every golden descriptor within cosine ' + '0.99 and 0.12 x its largest value, on every CPU kind',
  async (t) => {
    // 8-bit activations have a step of range/255 and weights (-64..64) of max/64; 15 quantized layers of a net 4-16
    // channels wide (few terms per sum to average the rounding out) leave about 5-12% of the output's scale. Measured
    // (builder 2): cosine 0.99246-0.99774, largest deviation 0.071-0.114 of the largest value. The weights cannot
    // saturate any x86 kernel, so these are the same on AVX2 alone and with AVX-512 VNNI (see the next test); builder
    // 1's -127..127 weights gave 0.98417 on an AVX2 Zen 3 and 0.99542 with VNNI.
    const dir = tempDir(t);
    const out = join(dir, 'tiny-int8.onnx');
    const report = await convertModel(CAFFEMODEL, out, { preprocessing: 'caffe', precision: 'int8' });
    assert.equal(report.precision, 'int8');
    assert.equal(report.calibration?.method, 'minmax');
    const { descriptors, precision } = await outputs(out);
    assert.equal(precision, 'int8');
    const cpu = describeCpu(cpuFeatures());
    GOLDEN_IMAGES.forEach((name, i) => {
      const g = golden.images[name].fc7_l2;
      const c = cosineSimilarity(descriptors[i], g);
      assert.ok(c >= 0.99, `${name}: cosine ${c} to golden (CPU ${cpu})`);
      const scale = Math.max(...g.map(Math.abs));
      descriptors[i].forEach((v, k) =>
        assert.ok(Math.abs(v - g[k]) <= 0.12 * scale, `${name}[${k}]: ${v} vs ${g[k]} (CPU ${cpu})`),
      );
    });
  },
);

/** Descriptors of face crops straight from an ONNX Runtime session, with its default or its exact int8 kernels. */
async function sessionDescriptors(
  model: string,
  exactInt8Kernels: boolean,
  photos: readonly string[],
): Promise<Float32Array[]> {
  const engine = await openEngine(model, { exactInt8Kernels });
  try {
    const out: Float32Array[] = [];
    for (let i = 0; i < photos.length; i += 8) {
      const batch = await Promise.all(photos.slice(i, i + 8).map((p) => loadSquare(p, p, 224)));
      const pixels = new Uint8Array(batch.length * 224 * 224 * 3);
      batch.forEach((b, k) => pixels.set(b.data, k * 224 * 224 * 3));
      const r = await engine.run({ image: { data: pixels, dims: [batch.length, 224, 224, 3] } }, ['descriptor']);
      const dim = r.descriptor.dims[1];
      for (let k = 0; k < batch.length; k++) out.push(r.descriptor.data.slice(k * dim, (k + 1) * dim));
    }
    return out;
  } finally {
    await engine.close();
  }
}

const facePhotos = () =>
  readdirSync(FACES_DIR)
    .filter((f) => /\.(jpe?g|png)$/i.test(f))
    .sort()
    .map((f) => join(FACES_DIR, f));

function largestDifference(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let worst = 0;
  a.forEach((d, i) => d.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - b[i][k])))));
  return worst;
}

test(
  "int8 model: the same descriptors from ONNX Runtime's default kernels " +
    'as from its exact U8U8 kernels (no saturation)',
  async (t) => {
    // Where the CPU has VNNI both kernels sum exactly; on AVX2 alone (or AVX-512 without VNNI) the default kernels add
    // pairs of products in a saturating int16, which -64..64 weights cannot overflow. Measured on an AVX2 Zen 3: the
    // largest difference over the 64 photos is 0 for builder 2's model, 0.18 for builder 1's -127..127 weights.
    const dir = tempDir(t);
    const out = join(dir, 'tiny-int8.onnx');
    await convertModel(CAFFEMODEL, out, { preprocessing: 'caffe', precision: 'int8' });
    assert.equal(readOnnxInfo(out).metadata['vggface.quantization.weight_limit'], '64');
    const photos = facePhotos();
    const fast = await sessionDescriptors(out, false, photos);
    const exact = await sessionDescriptors(out, true, photos);
    const d = largestDifference(fast, exact);
    assert.ok(
      d <= 1e-6,
      `largest descriptor difference ${d} between the default and the ` +
        `exact kernels (CPU ${describeCpu(cpuFeatures())})`,
    );
  },
);

test(
  'int8 model with -127..127 weights (builder 1): the exact kernels ' +
    'where the CPU would saturate them; inspect says so',
  async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'tiny-int8-full-range.onnx');
    await convertModel(CAFFEMODEL, out, { preprocessing: 'caffe', precision: 'int8', weightLimit: 127 });
    const cpu = cpuFeatures();
    const m = await VggFace.load({ weights: out });
    const photos = facePhotos().slice(0, 16);
    let ours: Float32Array[];
    try {
      assert.equal(m.info.int8WeightLimit, 127);
      assert.equal(m.exactInt8Kernels, int8PairsSaturate(cpu), describeCpu(cpu));
      ours = await m.describe(photos);
    } finally {
      await m.close();
    }
    // Whatever the CPU, the library's results are the exact ones.
    const exact = await sessionDescriptors(out, true, photos);
    const d = largestDifference(ours, exact);
    assert.ok(d <= 1e-6, `largest difference ${d} from the exact kernels (CPU ${describeCpu(cpu)})`);
    const shown = await runCli(['inspect', out]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^int8: +weights -127\.\.127 \(builder 1\)/m);
    assert.match(
      shown.stdout,
      int8PairsSaturate(cpu) ? /exact, slower kernels; convert the weights again/ : /exact on this CPU/,
    );
    const current = join(dir, 'tiny-int8.onnx');
    await convertModel(CAFFEMODEL, current, { preprocessing: 'caffe', precision: 'int8' });
    const json = JSON.parse((await runCli(['inspect', current, '--json'])).stdout) as {
      int8: { weightLimit: number; exactKernels: boolean };
    };
    assert.deepEqual({ ...json.int8, cpu: undefined }, { weightLimit: 64, cpu: undefined, exactKernels: false });
  },
);

test(
  'int8 model metadata: precision, calibration method, ' + 'set hash and source, source weights; inspect shows them',
  async (t) => {
    const dir = tempDir(t);
    const out = join(dir, 'tiny-int8.onnx');
    const r = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int8', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const m = readOnnxInfo(out).metadata;
    const builtin = await builtinCalibrationSet();
    assert.equal(m['vggface.precision'], 'int8');
    assert.equal(m['vggface.quantization.calibration.method'], 'minmax');
    assert.equal(m['vggface.quantization.calibration.sha256'], builtin.sha256);
    assert.equal(m['vggface.quantization.calibration.images'], '32');
    assert.match(m['vggface.quantization.calibration.source'], /built-in synthetic/);
    assert.equal(m['vggface.source.sha256'], await sha256File(CAFFEMODEL));
    assert.equal(m['vggface.source.name'], 'VGG_FACE.caffemodel');
    const ranges = JSON.parse(m['vggface.quantization.activation_ranges']) as Record<string, number>;
    assert.deepEqual(Object.keys(ranges), calibratedTensors());
    for (const [k, v] of Object.entries(ranges)) assert.ok(v > 0, `${k} range ${v}`);
    // Every conv and fc weight is int8 with one scale per output channel.
    const inits = new Map(readOnnxInfo(out).initializers.map((i) => [i.name, i]));
    for (const layer of [...calibratedTensors().slice(0, 13), 'fc6', 'fc7', 'fc8']) {
      const w = inits.get(`${layer}.weight_q`);
      assert.equal(w?.dataType, 3, `${layer} weight is int8`);
      assert.deepEqual(inits.get(`${layer}.weight_scale`)?.dims, [w!.dims[0]], `${layer} per-channel scales`);
    }
    const shown = await runCli(['inspect', out]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /vggface\.precision = int8/);
    assert.match(shown.stdout, new RegExp(`vggface\\.quantization\\.calibration\\.sha256 = ${builtin.sha256}`));
    assert.match(shown.stdout, /vggface\.quantization\.calibration\.method = minmax/);
    assert.match(shown.stdout, /vggface\.source\.sha256 = [0-9a-f]{64}/);
  },
);

test('int8 with a calibration directory and method: recorded, and the hash is that of the images', async (t) => {
  const dir = tempDir(t);
  const calib = join(dir, 'calib');
  mkdirSync(calib);
  for (const f of ['img1.jpg', 'img2.jpg', 'img3.jpg']) copyFileSync(join(FACES_DIR, f), join(calib, f));
  writeFileSync(join(calib, '.DS_Store'), 'not an image, but hidden'); // hidden files are skipped
  const out = join(dir, 'tiny-int8-faces.onnx');
  const r = await runCli([
    'convert',
    CAFFEMODEL,
    '-o',
    out,
    '--precision',
    'int8',
    '--calibration',
    calib,
    '--calibration-method',
    'mse',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /int8/);
  const m = readOnnxInfo(out).metadata;
  assert.equal(m['vggface.quantization.calibration.method'], 'mse');
  assert.equal(m['vggface.quantization.calibration.images'], '3');
  assert.equal(m['vggface.quantization.calibration.sha256'], (await directoryCalibrationSet(calib)).sha256);
  const { descriptors } = await outputs(out);
  GOLDEN_IMAGES.forEach((name, i) =>
    assert.ok(cosineSimilarity(descriptors[i], golden.images[name].fc7_l2) >= 0.98, name),
  );
});

test('model cache: the precision (and for int8 the calibration) is part of the key', async (t) => {
  const cacheDir = tempDir(t);
  const load = async (precision?: 'fp16' | 'int8') => {
    const m = await VggFace.load({ weights: CAFFEMODEL, cacheDir, precision });
    await m.close();
    return m;
  };
  const a = await load('int8');
  assert.equal(a.origin, 'converted');
  assert.equal(a.info.precision, 'int8');
  assert.match(a.modelPath, /-caffe-int8-minmax-builtin1-b\d+\.onnx$/);
  assert.equal(a.info.metadata['vggface.quantization.calibration.sha256'], (await builtinCalibrationSet()).sha256);
  assert.equal((await load('int8')).origin, 'cached');
  const b = await load('fp16');
  assert.equal(b.origin, 'converted');
  assert.match(b.modelPath, /-caffe-fp16-b\d+\.onnx$/);
  const c = await load();
  assert.equal(c.origin, 'converted');
  assert.equal(c.info.precision, 'fp32');
  const calib = join(cacheDir, 'calib');
  mkdirSync(calib);
  copyFileSync(join(FACES_DIR, 'img1.jpg'), join(calib, 'img1.jpg'));
  const d = await VggFace.load({ weights: CAFFEMODEL, cacheDir, precision: 'int8', calibration: calib });
  await d.close();
  assert.equal(d.origin, 'converted');
  assert.ok(
    d.modelPath.includes(`-int8-minmax-${(await directoryCalibrationSet(calib)).sha256.slice(0, 16)}-`),
    d.modelPath,
  );
  assert.equal(readdirSync(join(cacheDir, 'models')).filter((f) => f.endsWith('.onnx')).length, 4);
  // The temporary calibration model is gone.
  assert.deepEqual(
    readdirSync(join(cacheDir, 'models')).filter((f) => f.includes('tmp')),
    [],
  );
});

test('a converted model of another precision than asked is refused', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'tiny-fp16.onnx');
  await convertModel(CAFFEMODEL, out, { preprocessing: 'caffe', precision: 'fp16' });
  await assert.rejects(VggFace.load({ weights: out, precision: 'int8' }), (e: VggFaceError) => {
    assert.equal(e.code, 'E_USAGE');
    assert.match(e.message, /this model is fp16, int8 was asked for/);
    return true;
  });
  await assert.rejects(VggFace.load({ weights: out, calibration: dir }), /already a converted model/);
});

test('bad precision and calibration flags give clear errors', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'x.onnx');
  const int4 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int4']);
  assert.equal(int4.code, 2);
  assert.match(int4.stderr, /Expected one of fp32, fp16, int8 for --precision but received "int4"/);

  const describeInt4 = await runCli(['describe', '--weights', CAFFEMODEL, '--precision', 'int4', images[0]]);
  assert.equal(describeInt4.code, 2);
  assert.match(describeInt4.stderr, /for --precision but received "int4"/);
  await assert.rejects(
    VggFace.load({ weights: CAFFEMODEL, precision: 'int4' as never }),
    /Expected one of fp32, fp16, int8 for precision/,
  );

  const missing = join(dir, 'no-such-dir');
  const r1 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int8', '--calibration', missing]);
  assert.equal(r1.code, 1);
  assert.match(r1.stderr, new RegExp(`${missing}: no such file or directory`));

  const empty = join(dir, 'empty');
  mkdirSync(empty);
  const r2 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int8', '--calibration', empty]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /--calibration .*empty: the directory has no image files/);

  const notDir = join(GOLDEN_DIR, 'README.md');
  const r3 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int8', '--calibration', notDir]);
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /README\.md: not a directory/);

  const mixed = join(dir, 'mixed');
  mkdirSync(mixed);
  copyFileSync(join(FACES_DIR, 'img1.jpg'), join(mixed, 'a.jpg'));
  writeFileSync(join(mixed, 'notes.txt'), 'these are my calibration photos');
  const r4 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int8', '--calibration', mixed]);
  assert.equal(r4.code, 1);
  assert.match(r4.stderr, /calibration image .*notes\.txt: not a decodable image/);

  const r5 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'fp16', '--calibration', mixed]);
  assert.equal(r5.code, 2);
  assert.match(r5.stderr, /--calibration and --calibration-method apply to --precision int8, not fp16/);

  const r6 = await runCli(['convert', CAFFEMODEL, '-o', out, '--precision', 'int8', '--calibration-method', 'kl']);
  assert.equal(r6.code, 2);
  assert.match(
    r6.stderr,
    /Expected one of minmax, percentile, entropy, mse for --calibration-method but received "kl"/,
  );

  // Nothing was left half-written.
  assert.equal(existsSync(out), false);
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('tmp')),
    [],
  );
});
