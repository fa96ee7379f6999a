/** verify, eval and calibrate from the command line, on the shared photos with the tiny golden model. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { distance } from '../src/distance/distance.js';
import { VggFace } from '../src/vggface.js';
import { describeLargestFaces, FACES_DIR, GOLDEN_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';

// Whole photos go through face detection: use the shared YuNet copy, never the network.
process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const WEIGHTS = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
const face = (n: string) => join(FACES_DIR, n);

interface Scored {
  readonly distance: number;
  readonly same: boolean;
}

/**
 * The LFW protocol worked out by brute force from pair distances, apart from src/distance, as eval's report documents
 * it: thresholds accept distance <= t; the candidates are one below the smallest distance, the midpoints between
 * consecutive distinct distances and one above the largest, ties to the smallest; folds are stratified in file order.
 */
function protocolByHand(pairs: readonly Scored[]) {
  const accuracy = (ps: readonly Scored[], t: number) =>
    ps.filter((p) => p.distance <= t === p.same).length / ps.length;
  const best = (ps: readonly Scored[]) => {
    const d = [...new Set(ps.map((p) => p.distance))].sort((a, b) => a - b);
    const below = d[0] - Math.max(1e-6, Math.abs(d[0]) * 1e-6);
    const above = d[d.length - 1] + Math.max(1e-6, Math.abs(d[d.length - 1]) * 1e-6);
    let top = { threshold: below, accuracy: accuracy(ps, below) };
    for (const t of [...d.slice(1).map((x, i) => (d[i] + x) / 2), above]) {
      const a = accuracy(ps, t);
      if (a > top.accuracy) top = { threshold: t, accuracy: a };
    }
    return top;
  };
  let same = 0;
  let different = 0;
  const fold = pairs.map((p) => (p.same ? same++ : different++) % 10);
  const folds = Array.from({ length: 10 }, (_, f) => {
    const test = pairs.filter((_, i) => fold[i] === f);
    const { threshold } = best(pairs.filter((_, i) => fold[i] !== f));
    return { fold: f, pairs: test.length, threshold, accuracy: accuracy(test, threshold) };
  });
  const mean = folds.reduce((s, f) => s + f.accuracy, 0) / 10;
  const pos = pairs.filter((p) => p.same);
  const neg = pairs.filter((p) => !p.same);
  // AUC as the Mann-Whitney statistic: the chance a same-person pair is nearer than a different-person one.
  let wins = 0;
  for (const a of pos) for (const b of neg) wins += a.distance < b.distance ? 1 : a.distance === b.distance ? 0.5 : 0;
  // The ROC points (accept everything at or below each distinct distance) and where FAR crosses FRR between two.
  const d0 = Math.min(...pairs.map((p) => p.distance));
  const roc = [
    { threshold: d0 - 1e-9 * Math.max(1, Math.abs(d0)), far: 0, tar: 0 },
    ...[...new Set(pairs.map((p) => p.distance))]
      .sort((a, b) => a - b)
      .map((t) => ({
        threshold: t,
        far: neg.filter((p) => p.distance <= t).length / neg.length,
        tar: pos.filter((p) => p.distance <= t).length / pos.length,
      })),
  ];
  const cross = roc.findIndex(
    (p, k) => k > 0 && roc[k - 1].far - (1 - roc[k - 1].tar) <= 0 && p.far - (1 - p.tar) >= 0,
  );
  const [a, b] = [roc[cross - 1], roc[cross]];
  const [ga, gb] = [a.far - (1 - a.tar), b.far - (1 - b.tar)];
  const u = gb === ga ? 0 : -ga / (gb - ga);
  const all = best(pairs);
  return {
    folds,
    accuracy: mean,
    accuracyStd: Math.sqrt(folds.reduce((s, f) => s + (f.accuracy - mean) ** 2, 0) / 10),
    auc: wins / (pos.length * neg.length),
    eer: a.far + u * (b.far - a.far),
    eerThreshold: a.threshold + u * (b.threshold - a.threshold),
    // The highest TAR within the FAR, at the most lenient threshold that gives it.
    tarAtFar: (far: number) => {
      const within = roc.filter((p) => p.far <= far);
      const tar = Math.max(...within.map((p) => p.tar));
      return { tar, threshold: within.filter((p) => p.tar === tar).at(-1)!.threshold };
    },
    bestThreshold: all.threshold,
    bestThresholdAccuracy: all.accuracy,
  };
}

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
    // line-width: regex
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

test(
  'verify --pairs: one line per pair, each distinct image ' + 'described once; bad lines and missing images named',
  async (t) => {
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
  },
);

test(
  'eval end to end on the shared photos: report, ROC ' + 'SVG and PNG; calibrate stores what verify then uses',
  async (t) => {
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
    assert.equal(report.differentPairs, 262);
    // The same pairs measured here, each distinct photo once, and the protocol worked out from their distances.
    const rows = readFileSync(join(FACES_DIR, 'master.csv'), 'utf8')
      .trim()
      .split(/\r?\n/)
      .slice(1)
      .map((l) => l.split(',').map((x) => x.trim()));
    const names = [...new Set(rows.flatMap((row) => row.slice(0, 2)))];
    const described = await reference(cache, names.map(face));
    const byName = new Map(names.map((n, i) => [n, described[i]]));
    const scored = rows.map(([x, y, decision]) => ({
      distance: distance(byName.get(x)!, byName.get(y)!, 'cosine'),
      same: decision === 'Yes',
    }));
    const hand = protocolByHand(scored);
    // Eval's distances are these to 1e-6 (as verify's above). Pairs of different labels more than 2e-6 apart keep
    // their order, and pairs of one label trading places change no count, so every count-based figure (accuracies,
    // AUC, EER, TAR) must be the same but for float64 summation order (1e-12), and every threshold (a distance, or a
    // midpoint of two) the same to 1e-6.
    const sorted = [...scored].sort((a, b) => a.distance - b.distance);
    let gap = Infinity;
    for (let i = 1; i < sorted.length; i++)
      if (sorted[i].same !== sorted[i - 1].same) gap = Math.min(gap, sorted[i].distance - sorted[i - 1].distance);
    assert.ok(gap > 2e-6, `a same and a different pair only ${gap} apart: too close to compare eval's figures`);
    const near = (actual: number, expected: number, tolerance: number, what: string) =>
      assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected}`);
    assert.deepEqual(
      report.folds.map((f: { fold: number; pairs: number }) => [f.fold, f.pairs]),
      hand.folds.map((f) => [f.fold, f.pairs]),
    );
    hand.folds.forEach((f, i) => {
      near(report.folds[i].accuracy, f.accuracy, 1e-12, `fold ${i} accuracy`);
      near(report.folds[i].threshold, f.threshold, 1e-6, `fold ${i} threshold`);
    });
    near(report.accuracy, hand.accuracy, 1e-12, 'accuracy');
    near(report.accuracyStd, hand.accuracyStd, 1e-12, 'accuracyStd');
    near(report.auc, hand.auc, 1e-12, 'auc');
    near(report.eer, hand.eer, 1e-12, 'eer');
    near(report.eerThreshold, hand.eerThreshold, 1e-6, 'eerThreshold');
    near(report.bestThreshold, hand.bestThreshold, 1e-6, 'bestThreshold');
    near(report.bestThresholdAccuracy, hand.bestThresholdAccuracy, 1e-12, 'bestThresholdAccuracy');
    assert.deepEqual(
      report.tarAtFar.map((x: { far: number }) => x.far),
      [0.01, 0.001],
    );
    for (const x of report.tarAtFar as { far: number; tar: number; threshold: number }[]) {
      const expected = hand.tarAtFar(x.far);
      near(x.tar, expected.tar, 1e-12, `TAR at FAR ${x.far}`);
      near(x.threshold, expected.threshold, 1e-6, `threshold of TAR at FAR ${x.far}`);
    }
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
    const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
    assert.ok(p.stdout.includes(`accuracy (10-fold): ${pct(report.accuracy)} +- ${pct(report.accuracyStd)}`), p.stdout);
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
  },
);

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
