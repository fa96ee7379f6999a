/**
 * The whole --min-score range the help allows (0..1) works on every photo: at 0, YuNet's lowest-scored candidates
 * (landmarks all at one spot, eyes the wrong way round against the mouth, boxes in the padding) used to reach the
 * crop as a transform of scale 5e-324 whose inverse is infinite, and sharp refused its NaN region.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { alignFace, alignmentTransform, ALIGN_MODES, resolveAlignOptions } from '../src/face/align.js';
import { FaceDetector, resolveDetectOptions } from '../src/face/detector.js';
import { fitScaleAndShift, fitSimilarity, isInvertible } from '../src/face/similarity.js';
import type { DetectedFace } from '../src/face/types.js';
import { decodeYuNet, YUNET_STRIDES } from '../src/face/yunet.js';
import { decodeImage } from '../src/image/decode.js';
import { FACES_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

const PHOTOS = readdirSync(FACES_DIR)
  .filter((n) => /\.(jpe?g|png)$/i.test(n))
  .sort();

/** A candidate YuNet keeps on img1.jpg at --min-score 0: its eyes 1.5 px apart and reversed against the mouth. */
const DEGENERATE: DetectedFace = {
  box: { x: 384.79643993653485, y: 292.6222648787232, width: 55.99269427701577, height: 96.97270103936766 },
  score: 0.010110018857029826,
  landmarks: {
    rightEye: [417.94329261779785, 324.3076448440552],
    leftEye: [416.7583637237549, 323.31518173217773],
    noseTip: [421.2750883102417, 334.5056426525116],
    mouthRight: [417.03521251678467, 359.4662094116211],
    mouthLeft: [417.7223320007324, 350.07970333099365],
  },
};

const finite = (f: DetectedFace) =>
  [f.box.x, f.box.y, f.box.width, f.box.height, f.score, ...Object.values(f.landmarks).flat()].every(Number.isFinite);

test('landmarks that fit no upright face get the box transform: the crop is cut, not a NaN region', async () => {
  const image = await decodeImage(join(FACES_DIR, 'img1.jpg'), 'img1.jpg');
  const box = alignmentTransform(DEGENERATE, resolveAlignOptions({ align: 'none' }));
  for (const align of ALIGN_MODES) {
    const options = resolveAlignOptions({ align });
    const t = alignmentTransform(DEGENERATE, options);
    assert.ok(isInvertible(t), `${align}: ${JSON.stringify(t)}`);
    const { crop } = await alignFace(image, DEGENERATE, options);
    assert.deepEqual([crop.width, crop.height, crop.data.length], [224, 224, 224 * 224 * 3]);
  }
  assert.deepEqual(
    alignmentTransform(DEGENERATE, resolveAlignOptions({ align: 'eyes' })),
    box,
    'eyes falls back to the box',
  );
  // The fits say why instead of returning a transform with no inverse.
  assert.throws(
    () =>
      fitScaleAndShift(
        [
          [0, 0],
          [1, 0],
        ],
        [
          [1, 0],
          [0, 0],
        ],
        [1, 0],
      ),
    /RangeError: fitScaleAndShift: no positive scale maps the points under this rotation/,
  );
  assert.throws(
    () =>
      fitSimilarity(
        [
          [0, 0],
          [1, 0],
        ],
        [
          [3, 3],
          [3, 3],
        ],
      ),
    /the destination points coincide/,
  );
  assert.ok(!isInvertible({ a: -5e-324, b: 5e-324, tx: 111.5, ty: 134.2 }), 'the transform that used to reach sharp');
  // A box with no size is a caller's mistake, said as such.
  const flat = { ...DEGENERATE, box: { ...DEGENERATE.box, width: 0, height: 0 } };
  assert.throws(
    () => alignmentTransform(flat, resolveAlignOptions({ align: 'none' })),
    /Expected a box with finite coordinates and a positive width or height for face\.box/,
  );
});

test('decodeYuNet skips cells scored 0 and cells whose box or landmarks are not finite', () => {
  const width = 32;
  const height = 32;
  const outputs: Record<string, { data: Float32Array }> = {};
  for (const s of YUNET_STRIDES) {
    const cells = (width / s) * (height / s);
    outputs[`cls_${s}`] = { data: new Float32Array(cells).fill(0.9) };
    outputs[`obj_${s}`] = { data: new Float32Array(cells) }; // objectness 0: score 0
    outputs[`bbox_${s}`] = { data: new Float32Array(cells * 4) };
    outputs[`kps_${s}`] = { data: new Float32Array(cells * 10) };
  }
  // Stride 8 has 16 cells: 0 is a good detection, 1 overflows exp, 2 has a NaN landmark, 3 a NaN offset.
  const obj = outputs.obj_8.data;
  obj.fill(0.5, 0, 4);
  outputs.bbox_8.data[1 * 4 + 2] = 1000;
  outputs.kps_8.data[2 * 10 + 3] = NaN;
  outputs.bbox_8.data[3 * 4] = NaN;
  const faces = decodeYuNet(outputs, width, height, 0);
  assert.equal(faces.length, 1);
  assert.deepEqual(faces[0].box, { x: -4, y: -4, width: 8, height: 8 });
  assert.ok(Math.abs(faces[0].score - Math.sqrt(0.45)) < 1e-6);
  assert.equal(decodeYuNet(outputs, width, height, 0.7).length, 0);
});

test('every photo, min score 0, 0.5 and 1: finite faces on the photo, and a usable transform for every one', {
  timeout: 300_000,
}, async () => {
  const detector = await FaceDetector.open({ model: YUNET_MODEL });
  const aligns = ALIGN_MODES.map((align) => resolveAlignOptions({ align }));
  const counts = { 0: 0, 0.5: 0, 1: 0 };
  try {
    for (const name of PHOTOS) {
      const image = await decodeImage(join(FACES_DIR, name), name);
      for (const minScore of [0, 0.5, 1] as const) {
        const faces = await detector.detectDecoded(image, resolveDetectOptions({ minScore }));
        counts[minScore] += faces.length;
        for (const f of faces) {
          assert.ok(finite(f) && f.box.width > 0 && f.box.height > 0, `${name} @${minScore}: ${JSON.stringify(f)}`);
          assert.ok(f.score > 0 && f.score >= minScore, `${name}: score ${f.score}`);
          // Some of the photo (pixel centres at integers: -0.5..width-0.5) is under every box: boxes in the padding
          // are dropped, faces cut by the frame stay.
          const b = f.box;
          assert.ok(
            b.x < image.width - 0.5 && b.y < image.height - 0.5 && b.x + b.width > -0.5 && b.y + b.height > -0.5,
            `${name}: box off the photo`,
          );
          for (const o of aligns)
            assert.ok(isInvertible(alignmentTransform(f, o)), `${name} @${minScore} ${o.align}: ${JSON.stringify(f)}`);
        }
      }
    }
  } finally {
    await detector.close();
  }
  assert.ok(counts[0] > 50 * counts[0.5], `min score 0 keeps YuNet's candidates: ${counts[0]} vs ${counts[0.5]}`);
  assert.ok(counts[0.5] >= 75, `${counts[0.5]} faces at 0.5`);
  assert.equal(counts[1], 0, 'no detection scores exactly 1');
});

test('faces and describe --min-score 0, 0.5 and 1 on a face ' +
  'cut by the frame: exit 0, every face cropped and described', {
  timeout: 300_000,
}, async (t) => {
  const dir = tempDir(t);
  // img1.jpg's face (x 175-430) cut at x = 300 by the left edge, scaled down so that min score 0 stays quick.
  const photo = join(dir, 'border.jpg');
  await sharp(join(FACES_DIR, 'img1.jpg'))
    .extract({ left: 300, top: 40, width: 292, height: 420 })
    .resize(146)
    .jpeg()
    .toFile(photo);
  const seen: Record<string, number> = {};
  for (const minScore of ['0', '0.5', '1']) {
    const out = join(dir, `crops-${minScore}`);
    const f = await runCli(['faces', photo, '-o', out, '--min-score', minScore, '--detector-model', YUNET_MODEL]);
    assert.equal(f.code, 0, f.stderr);
    const lines = jsonLines<{ face?: DetectedFace; crop?: string; faces?: number }>(f.stdout);
    const d = await runCli([
      'describe',
      photo,
      '-w',
      TINY_CAFFEMODEL,
      '--cache-dir',
      join(dir, 'cache'),
      '--min-score',
      minScore,
      '--detector-model',
      YUNET_MODEL,
    ]);
    assert.equal(d.code, 0, d.stderr);
    assert.doesNotMatch(d.stderr + f.stderr, /Expected|NaN|internal error/);
    const described = jsonLines<{ face?: DetectedFace; descriptor?: number[]; faces?: number }>(d.stdout);
    if (minScore === '1') {
      assert.deepEqual(lines, [{ image: photo, faces: 0 }]);
      assert.deepEqual(described, [{ image: photo, faces: 0 }]);
      assert.equal(f.stderr, `vggface: ${photo}: no face found\n`);
      continue;
    }
    seen[minScore] = lines.length;
    assert.equal(described.length, lines.length, 'describe and faces find the same faces');
    assert.deepEqual(readdirSync(out).sort(), lines.map((l) => l.crop!.split('/').pop()!).sort(), 'one crop per face');
    for (const [i, l] of lines.entries()) {
      assert.ok(l.face && finite(l.face) && existsSync(l.crop!), JSON.stringify(l));
      assert.deepEqual(described[i].face, l.face);
      assert.ok(described[i].descriptor!.length === 32 && described[i].descriptor!.every(Number.isFinite));
    }
    const meta = await sharp(lines[lines.length - 1].crop!).metadata();
    assert.deepEqual([meta.width, meta.height], [224, 224]);
    // The largest face is the real one, cut by the left edge of the frame.
    assert.ok(lines[0].face!.score > 0.85 && lines[0].face!.box.x <= 0, JSON.stringify(lines[0].face));
  }
  assert.equal(seen['0.5'], 1);
  assert.ok(seen['0'] > 100, `${seen['0']} candidates at min score 0`);
});
