/** deepface mode: its resize and padding, its input scaling (golden vectors) and its published thresholds. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { deepfaceResize, deepfaceScaledSize, resizeBilinearCv } from '../src/image/deepface-resize.js';
import { loadSquare } from '../src/image/decode.js';
import { VggFace } from '../src/vggface.js';
import { DEEPFACE_THRESHOLDS, resolveThreshold } from '../src/verify/thresholds.js';
import { modelIdentity } from '../src/model/identity.js';
import { assertClose, golden, GOLDEN_DIR, GOLDEN_IMAGES, runCli, tempDir, jsonLines, FACES_DIR } from './helpers.js';

const rgb = (w: number, h: number, f: (x: number, y: number, c: number) => number) => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = f(x, y, c);
  return { data, width: w, height: h, channels: 3 as const };
};

test('deepface resize: size truncated, remainder of the padding at the bottom/right', () => {
  assert.deepEqual(deepfaceScaledSize(300, 200, 224), { width: 224, height: 149 }); // 200 * 224/300 = 149.33
  assert.deepEqual(deepfaceScaledSize(592, 800, 224), { width: 165, height: 224 }); // img1.jpg: 592 * 0.28 = 165.76
  const out = deepfaceResize(
    rgb(300, 200, () => 200),
    224,
  );
  // 224 - 149 = 75 rows of padding: 37 above, 38 below.
  const at = (x: number, y: number) => out.data[(y * 224 + x) * 3];
  assert.equal(at(100, 36), 0);
  assert.equal(at(100, 37), 200);
  assert.equal(at(100, 37 + 148), 200);
  assert.equal(at(100, 37 + 149), 0);
  assert.equal(at(0, 100), 200);
  assert.equal(at(223, 100), 200);
});

test('deepface resize: bilinear with half-pixel centres and clamped edges, as OpenCV INTER_LINEAR', () => {
  // 2 -> 3 columns (scale 2/3): source x = -1/6 (clamped to 0), 0.5, 7/6 (clamped to 1): [a, (a+b)/2, b]
  const up = resizeBilinearCv(
    rgb(2, 1, (x) => (x === 0 ? 10 : 40)),
    3,
    1,
  );
  assert.deepEqual([up[0], up[3], up[6]], [10, 25, 40]);
  // 4 -> 2 columns (scale 2): source x = 0.5, 2.5: the mean of each pair (no antialiasing beyond that)
  const down = resizeBilinearCv(
    rgb(4, 1, (x) => [0, 100, 200, 255][x]),
    2,
    1,
  );
  assert.deepEqual([down[0], down[3]], [50, 227.5]);
  // 3 -> 2 columns (scale 1.5): source x = 0.25, 1.75: 0.75 a + 0.25 b, 0.25 b + 0.75 c
  const third = resizeBilinearCv(
    rgb(3, 1, (x) => [0, 80, 160][x]),
    2,
    1,
  );
  assert.deepEqual([third[0], third[3]], [20, 140]);
  // Both axes: 2x2 -> 1x1 at source (0.5, 0.5): the mean of the four.
  const both = resizeBilinearCv(
    rgb(2, 2, (x, y) => [0, 40, 80, 120][y * 2 + x]),
    1,
    1,
  );
  assert.equal(both[0], 60);
});

test('deepface fit through loadSquare on a real photo: the face is scaled, not cropped', async () => {
  const img = await loadSquare(join(FACES_DIR, 'img1.jpg'), 'img1.jpg', 224, { fit: 'deepface' });
  assert.equal(img.width, 224);
  // 592x800 -> 165x224: 59 columns of padding, 29 left and 30 right.
  const col = (x: number) =>
    Array.from({ length: 224 }, (_, y) => img.data[(y * 224 + x) * 3] + img.data[(y * 224 + x) * 3 + 1]).reduce(
      (a, b) => a + b,
    );
  assert.equal(col(28), 0);
  assert.ok(col(29) > 0);
  assert.ok(col(29 + 164) > 0);
  assert.equal(col(29 + 165), 0);
});

test('--preprocessing deepface reproduces deepface_fc7_l2 for the golden images (library and CLI)', async (t) => {
  const cacheDir = tempDir(t);
  const model = await VggFace.load({
    weights: join(GOLDEN_DIR, 'VGG_FACE.caffemodel'),
    preprocessing: 'deepface',
    cacheDir,
  });
  try {
    const images = GOLDEN_IMAGES.map((n) => join(GOLDEN_DIR, n));
    const vectors = await model.describe(images);
    GOLDEN_IMAGES.forEach((n, i) => assertClose(vectors[i], golden.images[n].deepface_fc7_l2, 1e-4, n));
    // A 448x448 nearest-neighbour copy goes through deepface's resize (exact 2x: the mean of each 2x2 block):
    // close to the original's vector, not identical.
    const big = await sharp(images[0]).resize(448, 448, { kernel: 'nearest' }).png().toBuffer();
    const fromBig = await model.describe(big);
    let dot = 0;
    for (let i = 0; i < fromBig.length; i++) dot += fromBig[i] * vectors[0][i];
    assert.ok(dot > 0.99, `a nearest-neighbour 2x copy describes alike (cos ${dot})`);
    const id = await modelIdentity(model);
    assert.equal(id.preprocessing, 'deepface');
    for (const metric of ['cosine', 'euclidean', 'euclidean_l2', 'angular'] as const) {
      assert.deepEqual(await resolveThreshold({ metric, cacheDir, identity: id }), {
        threshold: DEEPFACE_THRESHOLDS[metric],
        metric,
        source: 'deepface',
      });
    }
    assert.deepEqual(DEEPFACE_THRESHOLDS, { cosine: 0.68, euclidean: 1.17, euclidean_l2: 1.17, angular: 0.39 });
  } finally {
    await model.close();
  }
  const r = await runCli([
    'describe',
    '--detector',
    'none',
    '--weights',
    join(GOLDEN_DIR, 'VGG_FACE.caffemodel'),
    '--preprocessing',
    'deepface',
    '--cache-dir',
    cacheDir,
    ...GOLDEN_IMAGES.map((n) => join(GOLDEN_DIR, n)),
  ]);
  assert.equal(r.code, 0, r.stderr);
  jsonLines<{ descriptor: number[] }>(r.stdout).forEach((l, i) =>
    assertClose(l.descriptor, golden.images[GOLDEN_IMAGES[i]].deepface_fc7_l2, 1e-4, GOLDEN_IMAGES[i]),
  );
});
