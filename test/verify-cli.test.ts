/** verify, eval and calibrate from the command line, on the shared photos with the tiny golden model. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { distance } from '../src/metrics/distance.js';
import { VggFace } from '../src/vggface.js';
import { describeLargestFaces, FACES_DIR, GOLDEN_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';

// Whole photos go through face detection: use the shared YuNet copy, never the network.
process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const face = (n: string) => join(FACES_DIR, n);

async function reference(cacheDir: string, images: string[]): Promise<Float32Array[]> {
  const model = await VggFace.load({ weights: WEIGHTS, cacheDir });
  try {
    return await describeLargestFaces(model, images);
  } finally {
    await model.close();
  }
}

test('verify A B: {verified, distance, threshold, metric} with an explicit threshold', async (t) => {
  const cache = tempDir(t);
  const [a, b] = await reference(cache, [face('img1.jpg'), face('img2.jpg')]);
  const d = distance(a, b, 'cosine');
  for (const [threshold, verified] of [
    [d + 1e-3, true],
    [d - 1e-3, false],
  ] as const) {
    const r = await runCli([
      'verify',
      face('img1.jpg'),
      face('img2.jpg'),
      '-w',
      WEIGHTS,
      '--cache-dir',
      cache,
      '--threshold',
      String(threshold),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out), ['verified', 'distance', 'threshold', 'metric', 'face1', 'face2']);
    assert.ok(out.face1.box.width > 50 && out.face2.score > 0.75, 'the faces compared are reported');
    assert.equal(out.verified, verified);
    assert.ok(Math.abs(out.distance - d) < 1e-6, `${out.distance} vs ${d}`);
    assert.equal(out.threshold, threshold);
    assert.equal(out.metric, 'cosine');
  }
  const e = await runCli([
    'verify',
    face('img1.jpg'),
    face('img2.jpg'),
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--metric',
    'euclidean',
    '--threshold',
    '10',
  ]);
  assert.ok(Math.abs(JSON.parse(e.stdout).distance - distance(a, b, 'euclidean')) < 1e-6);
});

test('verify: caffe mode without a calibrated threshold says so (exit 1); bad usage exits 2', async (t) => {
  const cache = tempDir(t);
  const r = await runCli(['verify', face('img1.jpg'), face('img2.jpg'), '-w', WEIGHTS, '--cache-dir', cache]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /no calibrated cosine threshold for model VGG_FACE\.caffemodel \(sha256 [0-9a-f]{12}, caffe preprocessing\): run "vggface calibrate --pairs FILE"/,
  );
  const one = await runCli(['verify', face('img1.jpg'), '-w', WEIGHTS, '--cache-dir', cache, '--threshold', '0.5']);
  assert.equal(one.code, 2);
  assert.match(one.stderr, /verify needs exactly two images \(or --pairs FILE\), got 1/);
  const metric = await runCli([
    'verify',
    face('img1.jpg'),
    face('img2.jpg'),
    '--metric',
    'manhattan',
    '--threshold',
    '1',
  ]);
  assert.equal(metric.code, 2);
  assert.match(
    metric.stderr,
    /Expected one of cosine, euclidean, euclidean_l2, angular for --metric but received "manhattan"/,
  );
});

test('verify --pairs: one line per pair, each distinct image described once; bad lines and missing images named', async (t) => {
  const cache = tempDir(t);
  const dir = tempDir(t);
  const csv = join(dir, 'pairs.csv');
  writeFileSync(csv, 'file_x,file_y,Decision\nimg1.jpg,img2.jpg,Yes\nimg1.jpg,img3.jpg,No\nimg2.jpg,img3.jpg,No\n');
  const [a, b, c] = await reference(cache, [face('img1.jpg'), face('img2.jpg'), face('img3.jpg')]);
  const r = await runCli([
    'verify',
    '--pairs',
    csv,
    '--images',
    FACES_DIR,
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--threshold',
    '0.1',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = jsonLines<{ line: number; image1: string; distance: number; same: boolean; verified: boolean }>(
    r.stdout,
  );
  assert.deepEqual(
    lines.map((l) => [l.line, l.same]),
    [
      [2, true],
      [3, false],
      [4, false],
    ],
  );
  [
    [a, b],
    [a, c],
    [b, c],
  ].forEach(([x, y], i) => {
    const d = distance(x, y, 'cosine');
    assert.ok(Math.abs(lines[i].distance - d) < 1e-6);
    assert.equal(lines[i].verified, d <= 0.1);
  });
  writeFileSync(csv, 'file_x,file_y,Decision\nimg1.jpg,img2.jpg,Yes\nimg1.jpg,img3.jpg,Perhaps\n');
  const bad = await runCli([
    'verify',
    '--pairs',
    csv,
    '--images',
    FACES_DIR,
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--threshold',
    '0.1',
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /pairs\.csv: line 3: Decision must be Yes or No, got "Perhaps"/);
  writeFileSync(csv, 'file_x,file_y\nimg1.jpg,img2.jpg\nimg1.jpg,missing.jpg\n');
  const missing = await runCli([
    'verify',
    '--pairs',
    csv,
    '--images',
    FACES_DIR,
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--threshold',
    '0.1',
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /pairs\.csv: 1 pair\(s\) name images that do not exist: line 3: .*missing\.jpg/);
  // An image that exists but is not an image: that pair fails with its line, the others go on.
  writeFileSync(join(dir, 'broken.jpg'), 'not a jpeg');
  writeFileSync(
    csv,
    `file_x,file_y\n${face('img1.jpg')},${face('img2.jpg')}\n${face('img1.jpg')},${join(dir, 'broken.jpg')}\n`,
  );
  const broken = await runCli(['verify', '--pairs', csv, '-w', WEIGHTS, '--cache-dir', cache, '--threshold', '0.1']);
  assert.equal(broken.code, 1);
  assert.equal(jsonLines(broken.stdout).length, 1);
  assert.match(broken.stderr, /pairs\.csv: line 3: .*broken\.jpg: not a decodable image/);
});

test('eval end to end on the shared photos: report, ROC SVG and PNG; calibrate stores what verify then uses', async (t) => {
  const cache = tempDir(t);
  const dir = tempDir(t);
  const svg = join(dir, 'roc.svg');
  const r = await runCli([
    'eval',
    '--pairs',
    join(FACES_DIR, 'master.csv'),
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--roc',
    svg,
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.pairs, 300);
  assert.equal(report.samePairs, 38);
  assert.equal(report.folds.length, 10);
  assert.equal(
    report.folds.reduce((s: number, f: { pairs: number }) => s + f.pairs, 0),
    300,
  );
  for (const k of ['accuracy', 'auc', 'eer', 'bestThreshold']) assert.equal(typeof report[k], 'number', k);
  assert.ok(report.accuracy >= 0 && report.accuracy <= 1 && report.auc >= 0 && report.auc <= 1);
  assert.deepEqual(
    report.tarAtFar.map((x: { far: number }) => x.far),
    [0.01, 0.001],
  );
  const text = readFileSync(svg, 'utf8');
  assert.match(text, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(text, /<polyline points="/);
  assert.match(text, new RegExp(`AUC ${report.auc.toFixed(4)}`));
  const png = join(dir, 'roc.png');
  const p = await runCli([
    'eval',
    '--pairs',
    join(FACES_DIR, 'master.csv'),
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--roc',
    png,
  ]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /accuracy \(10-fold\): \d+\.\d\d% \+- /);
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 640, 480]);
  const bad = await runCli([
    'eval',
    '--pairs',
    join(FACES_DIR, 'master.csv'),
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--roc',
    join(dir, 'roc.gif'),
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--roc .*roc\.gif: expected a \.svg or \.png file name/);

  const c = await runCli([
    'calibrate',
    '--pairs',
    join(FACES_DIR, 'master.csv'),
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--metric',
    'cosine',
    '--json',
  ]);
  assert.equal(c.code, 0, c.stderr);
  const cal = JSON.parse(c.stdout);
  assert.ok(existsSync(cal.file));
  assert.match(cal.file, /thresholds[/\\][0-9a-f]{64}-caffe\.json$/);
  assert.equal(cal.metrics[0].bestThreshold, report.bestThreshold);
  const v = await runCli(['verify', face('img1.jpg'), face('img2.jpg'), '-w', WEIGHTS, '--cache-dir', cache]);
  assert.equal(v.code, 0, v.stderr);
  assert.equal(JSON.parse(v.stdout).threshold, report.bestThreshold);
  // Another metric is still uncalibrated.
  const other = await runCli([
    'verify',
    face('img1.jpg'),
    face('img2.jpg'),
    '-w',
    WEIGHTS,
    '--cache-dir',
    cache,
    '--metric',
    'angular',
  ]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /no calibrated angular threshold/);
});

test('eval: unlabelled pairs and a missing image are errors with the line', async (t) => {
  const cache = tempDir(t);
  const dir = tempDir(t);
  const csv = join(dir, 'p.csv');
  writeFileSync(csv, 'file_x,file_y\nimg1.jpg,img2.jpg\n');
  const r = await runCli(['eval', '--pairs', csv, '--images', FACES_DIR, '-w', WEIGHTS, '--cache-dir', cache]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /p\.csv: line 2: no Decision \(Yes\/No\): evaluation needs labelled pairs/);
  writeFileSync(csv, 'file_x,file_y,Decision\nimg1.jpg,img2.jpg,Yes\nimg1.jpg,img999.jpg,No\n');
  const m = await runCli(['eval', '--pairs', csv, '--images', FACES_DIR, '-w', WEIGHTS, '--cache-dir', cache]);
  assert.equal(m.code, 1);
  assert.match(m.stderr, /line 3: .*img999\.jpg/);
});
