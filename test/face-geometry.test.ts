/** Pure geometry of the face pipeline: NMS, YuNet decoding, similarity fits, mapping back from the letterbox. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { iou, nonMaxSuppression } from '../src/face/nms.js';
import { decodeYuNet, YUNET_OUTPUTS, YUNET_STRIDES } from '../src/face/yunet.js';
import { unletterbox } from '../src/face/letterbox.js';
import {
  applySimilarity,
  fitScaleAndShift,
  fitSimilarity,
  invertSimilarity,
  similarityAngle,
  similarityScale,
  type Similarity,
} from '../src/face/similarity.js';
import type { Box, DetectedFace, Point } from '../src/face/types.js';

const box = (x: number, y: number, width: number, height: number): Box => ({ x, y, width, height });

test('iou: identical, disjoint, half-overlapping and touching boxes', () => {
  assert.equal(iou(box(0, 0, 10, 10), box(0, 0, 10, 10)), 1);
  assert.equal(iou(box(0, 0, 10, 10), box(20, 20, 5, 5)), 0);
  assert.equal(iou(box(0, 0, 10, 10), box(10, 0, 10, 10)), 0);
  // Overlap 5x10 = 50, union 150.
  assert.equal(iou(box(0, 0, 10, 10), box(5, 0, 10, 10)), 50 / 150);
  assert.equal(iou(box(0, 0, 0, 10), box(0, 0, 0, 10)), 0);
});

test('nonMaxSuppression removes duplicates of one face and keeps separate and slightly overlapping ones', () => {
  const items = [
    { id: 'dup-b', box: box(102, 98, 50, 60), score: 0.8 },
    { id: 'face-a', box: box(100, 100, 50, 60), score: 0.95 },
    { id: 'dup-c', box: box(96, 104, 54, 58), score: 0.7 },
    { id: 'other', box: box(300, 100, 40, 40), score: 0.6 },
    // IoU with face-a: overlap 10x60 = 600, union 3000 + 3000 - 600: 0.11 < 0.3, so kept.
    { id: 'neighbour', box: box(140, 100, 50, 60), score: 0.9 },
  ];
  const kept = nonMaxSuppression(items, 0.3);
  assert.deepEqual(
    kept.map((k) => k.id),
    ['face-a', 'neighbour', 'other'],
  );
  assert.deepEqual(
    nonMaxSuppression(items, 0.3, 2).map((k) => k.id),
    ['face-a', 'neighbour'],
  );
  // A stricter threshold also drops the neighbour.
  assert.deepEqual(
    nonMaxSuppression(items, 0.1).map((k) => k.id),
    ['face-a', 'other'],
  );
  assert.deepEqual(nonMaxSuppression([], 0.3), []);
});

/** Empty YuNet outputs for a width x height input, with one cell of one stride filled in. */
function yunetOutputs(width: number, height: number): Record<string, { data: Float32Array }> {
  const out: Record<string, { data: Float32Array }> = {};
  for (const s of YUNET_STRIDES) {
    const cells = (width / s) * (height / s);
    out[`cls_${s}`] = { data: new Float32Array(cells) };
    out[`obj_${s}`] = { data: new Float32Array(cells) };
    out[`bbox_${s}`] = { data: new Float32Array(cells * 4) };
    out[`kps_${s}`] = { data: new Float32Array(cells * 10) };
  }
  assert.equal(Object.keys(out).length, YUNET_OUTPUTS.length);
  return out;
}

test('decodeYuNet: score is sqrt(cls*obj), box and landmarks are cell offsets times the stride', () => {
  const out = yunetOutputs(128, 64); // stride 16: 8 columns x 4 rows
  const cell = 2 * 8 + 3; // row 2, column 3
  out.cls_16.data[cell] = 0.81;
  out.obj_16.data[cell] = 1.2; // clamped to 1
  out.bbox_16.data.set([0.5, 0.25, Math.log(2), Math.log(3)], cell * 4);
  out.kps_16.data.set([0.1, 0.2, 0.9, 0.2, 0.5, 0.6, 0.2, 1.0, 0.8, 1.0], cell * 10);
  // A cell under the threshold at stride 8.
  out.cls_8.data[5] = 0.5;
  out.obj_8.data[5] = 0.5;
  const faces = decodeYuNet(out, 128, 64, 0.6);
  assert.equal(faces.length, 1);
  const f = faces[0];
  assert.ok(Math.abs(f.score - 0.9) < 1e-6, `score ${f.score}`);
  // Centre (3.5, 2.25) cells = (56, 36) px; size 2 x 3 cells = 32 x 48 px.
  for (const [k, v] of Object.entries({ x: 40, y: 12, width: 32, height: 48 })) {
    assert.ok(Math.abs(f.box[k as keyof Box] - v) < 1e-4, `${k} ${f.box[k as keyof Box]} != ${v}`);
  }
  const expected: Record<string, Point> = {
    rightEye: [49.6, 35.2],
    leftEye: [62.4, 35.2],
    noseTip: [56, 41.6],
    mouthRight: [51.2, 48],
    mouthLeft: [60.8, 48],
  };
  for (const [name, p] of Object.entries(expected)) {
    const got = f.landmarks[name as keyof typeof f.landmarks];
    assert.ok(Math.abs(got[0] - p[0]) < 1e-4 && Math.abs(got[1] - p[1]) < 1e-4, `${name} ${got} != ${p}`);
  }
  assert.equal(decodeYuNet(out, 128, 64, 0.95).length, 0);
  assert.equal(decodeYuNet(out, 128, 64, 0.4).length, 2);
  assert.throws(() => decodeYuNet(out, 256, 64, 0.5), /stride 8: expected 256 cells for a 256x64 input, got 128/);
});

test('unletterbox maps detector pixels back with pixel centres kept', () => {
  const face: DetectedFace = {
    box: { x: 9.5, y: 19.5, width: 50, height: 60 },
    score: 0.9,
    landmarks: {
      rightEye: [19.5, 29.5],
      leftEye: [39.5, 29.5],
      noseTip: [29.5, 39.5],
      mouthRight: [21.5, 49.5],
      mouthLeft: [37.5, 49.5],
    },
  };
  const back = unletterbox(face, 0.5, 0.25);
  assert.deepEqual(back.box, { x: 19.5, y: 79.5, width: 100, height: 240 });
  assert.deepEqual(back.landmarks.rightEye, [39.5, 119.5]);
  assert.deepEqual(unletterbox(face, 1, 1), face);
});

const rot = (deg: number, scale: number, tx: number, ty: number): Similarity => {
  const r = (deg * Math.PI) / 180;
  return { a: scale * Math.cos(r), b: scale * Math.sin(r), tx, ty };
};
const close = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
const FIVE: Point[] = [
  [100, 120],
  [160, 118],
  [131, 150],
  [108, 180],
  [152, 182],
];

test('fitSimilarity recovers a known transform exactly and is the least-squares fit for noisy points', () => {
  const truth = rot(-23, 1.7, 12.5, -40);
  const fit = fitSimilarity(
    FIVE,
    FIVE.map((p) => applySimilarity(truth, p)),
  );
  for (const k of ['a', 'b', 'tx', 'ty'] as const) assert.ok(close(fit[k], truth[k]), `${k}: ${fit[k]} != ${truth[k]}`);
  assert.ok(close(similarityAngle(fit), -23) && close(similarityScale(fit), 1.7));

  const noisy = FIVE.map((p, i) => {
    const q = applySimilarity(truth, p);
    return [q[0] + [1.5, -2, 0.7, 2.2, -1][i], q[1] + [-1, 0.5, 2, -1.7, 0.4][i]] as Point;
  });
  const ls = fitSimilarity(FIVE, noisy);
  const err = (s: Similarity) =>
    FIVE.reduce(
      (e, p, i) => e + (applySimilarity(s, p)[0] - noisy[i][0]) ** 2 + (applySimilarity(s, p)[1] - noisy[i][1]) ** 2,
      0,
    );
  // Every small change of any parameter makes the squared error larger.
  for (const k of ['a', 'b', 'tx', 'ty'] as const) {
    for (const d of [1e-3, -1e-3]) assert.ok(err({ ...ls, [k]: ls[k] + d }) > err(ls), `${k}${d > 0 ? '+' : '-'}`);
  }
  assert.throws(
    () =>
      fitSimilarity(
        [
          [1, 1],
          [1, 1],
        ],
        [
          [0, 0],
          [1, 1],
        ],
      ),
    /coincide/,
  );
  assert.throws(() => fitSimilarity([[1, 1]], [[0, 0]]), /two or more/);
});

test('fitScaleAndShift keeps the given rotation and fits scale and shift by least squares', () => {
  const truth = rot(10, 0.6, -5, 7);
  const dst = FIVE.map((p) => applySimilarity(truth, p));
  const fit = fitScaleAndShift(FIVE, dst, [Math.cos((10 * Math.PI) / 180) * 3, Math.sin((10 * Math.PI) / 180) * 3]);
  for (const k of ['a', 'b', 'tx', 'ty'] as const) assert.ok(close(fit[k], truth[k]), `${k}: ${fit[k]} != ${truth[k]}`);
  const level = fitScaleAndShift(FIVE, dst, [1, 0]);
  assert.equal(level.b, 0);
  assert.ok(close(similarityAngle(level), 0));
});

test('invertSimilarity undoes the transform', () => {
  const s = rot(37, 2.3, 100, -50);
  const inv = invertSimilarity(s);
  for (const p of FIVE) {
    const back = applySimilarity(inv, applySimilarity(s, p));
    assert.ok(close(back[0], p[0], 1e-12) && close(back[1], p[1], 1e-12));
  }
});
