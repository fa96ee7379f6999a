/** Alignment: the transform of each mode, and the one-step libvips warp that cuts the crop. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  alignmentTransform,
  resolveAlignOptions,
  templateInCrop,
  transformLandmarks,
  UNIT_TEMPLATE,
  warpToCrop,
} from '../src/face/align.js';
import { applySimilarity, fitSimilarity, similarityAngle, type Similarity } from '../src/face/similarity.js';
import { LANDMARK_NAMES, type DetectedFace, type Point } from '../src/face/types.js';
import type { RawImage } from '../src/image/types.js';
import { eyeAngle } from './fixtures/faces.js';

/** A black photo with 5x5 red squares centred on the given pixels. */
function markedPhoto(width: number, height: number, marks: readonly Point[]): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (const [mx, my] of marks) {
    for (let y = my - 2; y <= my + 2; y++) for (let x = mx - 2; x <= mx + 2; x++) data[(y * width + x) * 3] = 255;
  }
  return { data, width, height, channels: 3 };
}

/** Centroid of the red channel. */
function redCentroid(img: RawImage): Point {
  let sx = 0,
    sy = 0,
    s = 0;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const v = img.data[(y * img.width + x) * 3];
      sx += v * x;
      sy += v * y;
      s += v;
    }
  }
  return [sx / s, sy / s];
}

test(
  'warpToCrop puts a photo pixel where the transform says, ' + 'for rotations, zooms in and out and fractional shifts',
  async () => {
    const mark: Point = [170, 95];
    const photo = markedPhoto(320, 200, [mark]);
    let worst = 0;
    for (const deg of [-40, -12.5, 0, 7, 33]) {
      for (const scale of [0.6, 1, 2.7]) {
        const r = (deg * Math.PI) / 180;
        const lin = { a: scale * Math.cos(r), b: scale * Math.sin(r), tx: 0, ty: 0 };
        const at = applySimilarity(lin, mark);
        const target: Point = [31.37, 40.81];
        const t: Similarity = { ...lin, tx: target[0] - at[0], ty: target[1] - at[1] };
        const crop = await warpToCrop(photo, t, 72);
        assert.equal(crop.data.length, 72 * 72 * 3);
        const c = redCentroid(crop);
        const err = Math.hypot(c[0] - target[0], c[1] - target[1]);
        worst = Math.max(worst, err);
        assert.ok(err < 0.3, `${deg} deg, x${scale}: mark at ${c.map((v) => v.toFixed(2))}, expected ${target}`);
      }
    }
    assert.ok(worst > 0, 'some interpolation error is expected; zero everywhere would mean the test measured nothing');
  },
);

test('warpToCrop fills what lies outside the photo with black, and a crop wholly outside is all black', async () => {
  const photo: RawImage = { data: new Uint8Array(100 * 80 * 3).fill(200), width: 100, height: 80, channels: 3 };
  // The crop's left half looks left of the photo.
  const half = await warpToCrop(photo, { a: 1, b: 0, tx: 32, ty: -10 }, 64);
  const px = (x: number, y: number) => half.data[(y * 64 + x) * 3];
  assert.equal(px(5, 30), 0);
  assert.equal(px(60, 30), 200);
  const outside = await warpToCrop(photo, { a: 1, b: 0, tx: -500, ty: -500 }, 32);
  assert.ok(outside.data.every((v) => v === 0));
});

const face = (landmarks: Record<string, Point>, box = { x: 80, y: 60, width: 120, height: 150 }): DetectedFace => ({
  box,
  score: 0.9,
  landmarks: landmarks as unknown as DetectedFace['landmarks'],
});
/** A face tilted by about 20 degrees, turned a little (eyes closer to the nose on one side). */
const TILTED = face({
  rightEye: [100, 100],
  leftEye: [150, 118],
  noseTip: [118, 140],
  mouthRight: [92, 160],
  mouthLeft: [130, 175],
});

test('align eyes (default): eye line exactly level, scale and position fitted to all five points', () => {
  const o = resolveAlignOptions({});
  assert.deepEqual(o, { align: 'eyes', margin: 0.2, size: 224 });
  const t = alignmentTransform(TILTED, o);
  const moved = transformLandmarks(TILTED.landmarks, t);
  assert.ok(Math.abs(eyeAngle(moved)) < 1e-9, `eye angle ${eyeAngle(moved)}`);
  assert.ok(Math.abs(similarityAngle(t) + eyeAngle(TILTED.landmarks)) < 1e-9);
  // Not the two-point fit: the scale comes from all five landmarks.
  const tpl = templateInCrop(224, 0.2);
  const twoPoint = fitSimilarity([TILTED.landmarks.rightEye, TILTED.landmarks.leftEye], [tpl.rightEye, tpl.leftEye]);
  assert.ok(Math.abs(Math.hypot(t.a, t.b) - Math.hypot(twoPoint.a, twoPoint.b)) > 0.01);
});

test('align 5pt is the least-squares similarity of the five landmarks; none keeps the box upright and centred', () => {
  const tpl = templateInCrop(224, 0.2);
  const five = alignmentTransform(TILTED, resolveAlignOptions({ align: '5pt' }));
  const ls = fitSimilarity(
    LANDMARK_NAMES.map((n) => TILTED.landmarks[n]),
    LANDMARK_NAMES.map((n) => tpl[n]),
  );
  assert.deepEqual(five, ls);
  const none = alignmentTransform(TILTED, resolveAlignOptions({ align: 'none', margin: 0.5 }));
  assert.equal(none.b, 0);
  // Box centre (140, 135) to the crop centre; the box's longer side (150) spans 224 / (1 + 2 * 0.5).
  const c = applySimilarity(none, [140, 135]);
  assert.ok(Math.abs(c[0] - 111.5) < 1e-9 && Math.abs(c[1] - 111.5) < 1e-9);
  assert.ok(Math.abs(none.a * 150 - 112) < 1e-9);
});

test('the template is level and symmetric, and the margin shrinks it inside the crop', () => {
  assert.equal(UNIT_TEMPLATE.rightEye[1], UNIT_TEMPLATE.leftEye[1]);
  assert.equal(UNIT_TEMPLATE.rightEye[0] + UNIT_TEMPLATE.leftEye[0], 1);
  const eyeGap = (m: number) => templateInCrop(224, m).leftEye[0] - templateInCrop(224, m).rightEye[0];
  assert.ok(Math.abs(eyeGap(0) - 224 * (0.657301 - 0.342699)) < 1e-9);
  assert.ok(Math.abs(eyeGap(0.5) - eyeGap(0) / 2) < 1e-9);
});

test('resolveAlignOptions rejects unknown modes and out-of-range margins with a named message', () => {
  assert.throws(
    () => resolveAlignOptions({ align: 'affine' as never }),
    /Expected one of none, eyes, 5pt for align but received "affine"/,
  );
  assert.throws(() => resolveAlignOptions({ margin: -0.1 }), /for margin but received number -0.1/);
  assert.throws(() => resolveAlignOptions({ size: 8 }), /for size/);
});
