/**
 * The browser build's pure parts, checked in Node against what Node does: the resampling (bit-exact with sharp's
 * resize), the aligned-crop warp (against sharp's affine), the ONNX metadata reading (against the builder's names
 * and Node's modelInfoFromOnnx), and the bundle itself (size, nothing Node-specific in it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { fitSquare, resizeRgb } from '../src/browser/resize.js';
import { warpBilinear } from '../src/browser/warp.js';
import {
  META_KEYS,
  MODEL_INPUT,
  MODEL_OUTPUTS,
  PRECISIONS,
  modelInfo,
  readOnnxInterface,
} from '../src/browser/model-info.js';
import {
  META,
  MODEL_INPUT as NODE_INPUT,
  MODEL_OUTPUTS as NODE_OUTPUTS,
  PRECISIONS as NODE_PRECISIONS,
} from '../src/onnx/contract.js';
import { convertModel } from '../src/onnx/convert-model.js';
import { modelInfoFromOnnx } from '../src/model/cache.js';
import { alignmentTransform, resolveAlignOptions, warpToCrop } from '../src/face/align.js';
import { FaceDetector, resolveDetectOptions } from '../src/face/detector.js';
import { decodeImage, loadSquare } from '../src/image/decode.js';
import type { RawImage } from '../src/image/types.js';
import { FACES_DIR, ROOT, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

/** A photo-like test card: gradients, hard edges and noise, so every resampling tap matters. */
function card(width: number, height: number, seed = 1): RawImage {
  const data = new Uint8Array(width * height * 3);
  let x = seed;
  for (let y = 0; y < height; y++) {
    for (let i = 0; i < width; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const k = (y * width + i) * 3;
      data[k] = (i * 255) / width;
      data[k + 1] = ((i >> 4) + (y >> 4)) % 2 ? 230 : 20;
      data[k + 2] = (x >>> 24) & 255;
    }
  }
  return { data, width, height, channels: 3 };
}

function diff(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.length, max };
}

test(
  "resize.ts is sharp's resize to the bit: crop, pad and stretch, shrinking " +
    '(with and without the box pre-shrink) and enlarging',
  async () => {
    const sizes: [number, number][] = [
      [800, 557],
      [592, 800],
      [224, 100],
      [150, 180],
      [60, 90],
      [40, 41],
      [2000, 1500],
      [900, 3000],
      [1001, 999],
      [223, 225],
    ];
    let worst = 0;
    for (const [w, h] of sizes) {
      const img = card(w, h, w * h);
      for (const fit of ['crop', 'pad', 'stretch'] as const) {
        const ref = await loadSquare(img, 'card', 224, { fit });
        const d = diff(fitSquare(img, 224, fit).data, ref.data);
        worst = Math.max(worst, d.mean);
        // Odd sizes shrunk 4 times or more (a box average of 2 first, the last one over an extended edge pixel):
        // a few values differ by a grey level or two (1001x999: 0.5% of them); every other case is bit-exact.
        if (w % 2 && h % 2 && Math.min(w, h) >= 896)
          assert.ok(d.max <= 2 && d.mean < 0.01, `${w}x${h} ${fit}: mean ${d.mean}, max ${d.max}`);
        else assert.deepEqual(d, { mean: 0, max: 0 }, `${w}x${h} ${fit}`);
      }
    }
    // The detector's copy of a large photo (sharp resize, fit fill).
    const big = card(3000, 2000, 7);
    const { data } = await sharp(big.data, { raw: { width: 3000, height: 2000, channels: 3 } })
      .resize(1024, 683, { fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.deepEqual(diff(resizeRgb(big, 1024, 683).data, data), { mean: 0, max: 0 });
    console.log(`# resize: worst mean |diff| to sharp ${worst.toFixed(5)} grey levels over ${sizes.length * 3} cases`);
  },
);

test(
  'resize.ts on the decoded photos: equal to sharp from the same pixels; sharp from the ' +
    'JPEG file differs only where it shrinks the JPEG while decoding',
  async () => {
    const files = ['img1.jpg', 'couple.jpg', 'img12.jpg', 'img18.jpg', 'img24.jpg'];
    for (const f of files) {
      const path = join(FACES_DIR, f);
      const full = await decodeImage(path, f);
      const mine = fitSquare(full, 224, 'crop').data;
      assert.deepEqual(
        diff(mine, (await loadSquare(full, f, 224, { fit: 'crop' })).data),
        { mean: 0, max: 0 },
        `${f} from pixels`,
      );
      const fromFile = diff(mine, (await loadSquare(path, f, 224, { fit: 'crop' })).data);
      // sharp's JPEG shrink-on-load: when the shrink is 3 or more (shorter side >= 672 px), libjpeg decodes at 1/2
      // size.
      if (Math.min(full.width, full.height) / 224 >= 3)
        assert.ok(fromFile.mean > 0, `${f}: shrink-on-load changes the pixels`);
      else assert.deepEqual(fromFile, { mean: 0, max: 0 }, `${f} from the file`);
    }
  },
);

test(
  "warp.ts cuts the aligned crop as Node's sharp affine " + 'does, to the bit, for every alignment and margin',
  async (t) => {
    const detector = await FaceDetector.open({ model: YUNET_MODEL, threads: 1 });
    t.after(() => detector.close());
    let n = 0;
    let off = 0;
    let max = 0;
    for (const f of ['img1.jpg', 'couple.jpg', 'selfie-many-people.jpg', 'img54.jpg', 'img59.jpg', 'img62.jpg']) {
      const img = await decodeImage(join(FACES_DIR, f), f);
      for (const face of await detector.detectDecoded(img, resolveDetectOptions({}))) {
        for (const align of ['eyes', '5pt', 'none'] as const) {
          for (const margin of [0, 0.2, 1]) {
            const tr = alignmentTransform(face, resolveAlignOptions({ align, margin }));
            const a = (await warpToCrop(img, tr, 224)).data;
            const b = warpBilinear(img, tr, 224).data;
            for (let i = 0; i < a.length; i++) {
              const d = Math.abs(a[i] - b[i]);
              if (d > 0) off++;
              max = Math.max(max, d);
            }
            n += a.length;
          }
        }
      }
    }
    console.log(`# warp: ${off} of ${n} values differ from sharp's affine (max ${max})`);
    assert.equal(off, 0, `${off} values differ, by up to ${max}`);
  },
);

test(
  "the browser reads a model's interface and metadata as " + "Node does, with the builder's names and Node's messages",
  async (t) => {
    assert.equal(MODEL_INPUT, NODE_INPUT);
    assert.deepEqual(MODEL_OUTPUTS, NODE_OUTPUTS);
    assert.deepEqual(PRECISIONS, NODE_PRECISIONS);
    for (const [k, v] of Object.entries(META_KEYS)) assert.equal(v, META[k as keyof typeof META], `META.${k}`);
    const dir = tempDir(t);
    for (const [name, options] of [
      ['fp32', { preprocessing: 'caffe' }],
      ['fp16-deepface', { preprocessing: 'deepface', precision: 'fp16' }],
    ] as const) {
      const file = join(dir, `${name}.onnx`);
      await convertModel(TINY_CAFFEMODEL, file, options);
      assert.deepEqual(modelInfo(file, readOnnxInterface(readFileSync(file), file)), modelInfoFromOnnx(file), name);
    }
    const nodeError = (() => {
      try {
        modelInfoFromOnnx(YUNET_MODEL);
      } catch (err) {
        return (err as Error).message;
      }
    })();
    assert.throws(() => modelInfo(YUNET_MODEL, readOnnxInterface(readFileSync(YUNET_MODEL), YUNET_MODEL)), {
      message: nodeError,
    });
    assert.throws(
      () => readOnnxInterface(readFileSync(join(FACES_DIR, 'img1.jpg')), 'img1.jpg'),
      /img1\.jpg: not an ONNX model \(starts with bytes ff d8 ff/,
    );
    assert.throws(
      () => readOnnxInterface(new Uint8Array([8, 7, 0x3a, 0xff, 1]), 'cut.onnx'),
      /cut\.onnx: not an ONNX model \(truncated protobuf/,
    );
  },
);

test('the bundle: the library <= 150 kB minified, nothing Node-specific in it, exported as vggface/browser', () => {
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-browser.mjs')], { encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  console.log(built.stdout.trim().replace(/^/gm, '# '));
  const lib = readFileSync(join(ROOT, 'dist', 'browser', 'vggface.js'), 'utf8');
  const worker = readFileSync(join(ROOT, 'dist', 'browser', 'vggface-worker.js'), 'utf8');
  assert.ok(lib.length + worker.length <= 150 * 1024, `${lib.length} + ${worker.length} bytes`);
  for (const code of [lib, worker]) {
    assert.doesNotMatch(code, /\bfrom\s*["']node:|require\(|["']sharp["']|onnxruntime-node|process\.env/);
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.exports['./browser'].default, './dist/browser/vggface.js');
});
