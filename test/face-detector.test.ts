/** YuNet on the real photos of ../shared/data/faces: counts, landmarks, upright crops, EXIF, options, bad models. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { alignFace, resolveAlignOptions, transformLandmarks } from '../src/face/align.js';
import { FaceDetector, resolveDetectOptions } from '../src/face/detector.js';
import { LANDMARK_NAMES, type DetectedFace } from '../src/face/types.js';
import { decodeImage } from '../src/image/decode.js';
import type { RawImage } from '../src/image/types.js';
import { VggFaceError } from '../src/errors.js';
import { FACES_DIR } from './helpers.js';
import { expectedFaces, eyeAngle, FACE_POINTS, TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

const PHOTOS = readdirSync(FACES_DIR)
  .filter((f) => f.endsWith('.jpg'))
  .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));

let detector: FaceDetector;
/** Every photo decoded and detected once with the defaults, shared by the tests below. */
const found = new Map<string, { image: RawImage; faces: DetectedFace[] }>();

before(async () => {
  detector = await FaceDetector.open({ model: YUNET_MODEL, threads: 2 });
  for (const photo of PHOTOS) {
    const image = await decodeImage(join(FACES_DIR, photo), photo);
    found.set(photo, { image, faces: await detector.detectDecoded(image, resolveDetectOptions({})) });
  }
});
after(() => detector.close());

test('the detector finds one face in each single-person portrait and the expected faces in the others', () => {
  assert.equal(PHOTOS.length, 64);
  const wrong = PHOTOS.filter((p) => found.get(p)!.faces.length !== expectedFaces(p)).map(
    (p) => `${p}: ${found.get(p)!.faces.length}, expected ${expectedFaces(p)}`,
  );
  assert.deepEqual(wrong, []);
  const total = PHOTOS.reduce((n, p) => n + expectedFaces(p), 0);
  assert.equal(total, 59 + 2 + 6 + 4 + 2 + 2);
});

test(
  'in the multi-person photos every detection is on a ' + 'face seen by eye, and every such face is detected once',
  () => {
    for (const [photo, points] of Object.entries(FACE_POINTS)) {
      const faces = found.get(photo)!.faces;
      const inside = (f: DetectedFace, [x, y]: readonly number[]) =>
        x >= f.box.x && x <= f.box.x + f.box.width && y >= f.box.y && y <= f.box.y + f.box.height;
      for (const p of points) assert.equal(faces.filter((f) => inside(f, p)).length, 1, `${photo}: face at ${p}`);
      for (const f of faces)
        assert.equal(points.filter((p) => inside(f, p)).length, 1, `${photo}: detection at ${f.box.x},${f.box.y}`);
    }
  },
);

test("landmarks are sane: eyes above the nose above the mouth, the subject's right eye on the image's left", () => {
  for (const photo of PHOTOS) {
    for (const { landmarks: l, box, score } of found.get(photo)!.faces) {
      const what = `${photo} face at ${box.x.toFixed(0)},${box.y.toFixed(0)}`;
      assert.ok(Math.max(l.rightEye[1], l.leftEye[1]) < l.noseTip[1], `${what}: eyes not above the nose`);
      assert.ok(l.noseTip[1] < Math.min(l.mouthRight[1], l.mouthLeft[1]), `${what}: nose not above the mouth`);
      assert.ok(l.rightEye[0] < l.leftEye[0] && l.mouthRight[0] < l.mouthLeft[0], `${what}: left/right swapped`);
      assert.ok(score >= 0.75 && score <= 1, `${what}: score ${score}`);
    }
  }
});

test('faces come largest first, and boxes lie in the photo', () => {
  for (const photo of PHOTOS) {
    const { image, faces } = found.get(photo)!;
    for (let i = 1; i < faces.length; i++)
      assert.ok(faces[i - 1].box.width * faces[i - 1].box.height >= faces[i].box.width * faces[i].box.height, photo);
    for (const f of faces) {
      const cx = f.box.x + f.box.width / 2;
      const cy = f.box.y + f.box.height / 2;
      assert.ok(
        cx > 0 && cx < image.width && cy > 0 && cy < image.height,
        `${photo}: box centre ${cx},${cy} outside ${image.width}x${image.height}`,
      );
    }
  }
});

test(
  'aligned crops are upright: eye line within 2 degrees ' + 'of level for every face, checked again by re-detection',
  async () => {
    const align = resolveAlignOptions({});
    const redetected: number[] = [];
    let tiltedBefore = 0;
    for (const photo of PHOTOS) {
      const { image, faces } = found.get(photo)!;
      for (const face of faces) {
        const { crop, transform } = await alignFace(image, face, align);
        assert.equal(crop.width, 224);
        const angle = eyeAngle(transformLandmarks(face.landmarks, transform));
        assert.ok(Math.abs(angle) < 2, `${photo}: eye line at ${angle.toFixed(2)} degrees after alignment`);
        if (Math.abs(eyeAngle(face.landmarks)) > 5) tiltedBefore++;
        if (expectedFaces(photo) !== 1) continue;
        // Independent check on single-person portraits: YuNet run on the crop finds the face, eyes level.
        const again = await detector.detectDecoded(crop, resolveDetectOptions({}));
        assert.equal(again.length, 1, `${photo}: ${again.length} faces in the aligned crop`);
        redetected.push(Math.abs(eyeAngle(again[0].landmarks)));
      }
    }
    assert.ok(tiltedBefore >= 10, `only ${tiltedBefore} faces were tilted by more than 5 degrees before alignment`);
    // YuNet's landmarks carry a few degrees of noise of their own, so the re-detected angle is judged by its median.
    const sorted = redetected.sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1];
    assert.ok(median < 2, `median eye angle re-detected on the crops: ${median.toFixed(2)} degrees`);
  },
);

/** Writes the upright photo's pixels turned by `angle` and tagged with the EXIF orientation that turns them back. */
async function exifRotated(photo: string, angle: number, orientation: number): Promise<Buffer> {
  const pixels = await sharp(join(FACES_DIR, photo)).png().toBuffer();
  const turned = await sharp(pixels).rotate(angle).png().toBuffer();
  return sharp(turned).withMetadata({ orientation }).png().toBuffer();
}

test('an EXIF-rotated photo gives the same faces as the upright one', async () => {
  for (const photo of ['couple.jpg', 'img1.jpg']) {
    const upright = found.get(photo)!.faces;
    for (const [angle, orientation] of [
      [-90, 6],
      [180, 3],
      [90, 8],
    ]) {
      const file = await exifRotated(photo, angle, orientation);
      const meta = await sharp(file).metadata();
      assert.equal(meta.orientation, orientation);
      const faces = await detector.detect(file);
      assert.equal(faces.length, upright.length, `${photo} orientation ${orientation}`);
      faces.forEach((f, i) => {
        const u = upright[i];
        for (const k of ['x', 'y', 'width', 'height'] as const) {
          assert.ok(
            Math.abs(f.box[k] - u.box[k]) < 2,
            `${photo} orientation ${orientation}: box ${k} ${f.box[k]} vs ${u.box[k]}`,
          );
        }
        assert.ok(
          Math.abs(f.landmarks.noseTip[0] - u.landmarks.noseTip[0]) < 2 &&
            Math.abs(f.landmarks.noseTip[1] - u.landmarks.noseTip[1]) < 2,
        );
      });
    }
  }
});

test('a photo larger than the detection size is scaled down and the faces mapped back to its pixels', async () => {
  const { image, faces } = found.get('couple.jpg')!;
  const big = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(image.width * 2, image.height * 2)
    .png()
    .toBuffer();
  // The two faces are about the same size, so match them by position rather than by order.
  const twin = (f: DetectedFace) =>
    faces.reduce((best, u) => (Math.abs(u.box.x - f.box.x / 2) < Math.abs(best.box.x - f.box.x / 2) ? u : best));
  // YuNet's output moves a little with the scale it sees (its box more than its landmarks), so tolerances are
  // shares of the face's width: a mapping error would move everything by the same factor.
  const near = (f: DetectedFace, landmarkShare: number, boxShare: number) => {
    const u = twin(f);
    const l = LANDMARK_NAMES.flatMap((n) => [
      f.landmarks[n][0] / 2 - u.landmarks[n][0],
      f.landmarks[n][1] / 2 - u.landmarks[n][1],
    ]);
    const b = [
      f.box.x / 2 - u.box.x,
      f.box.y / 2 - u.box.y,
      f.box.width / 2 - u.box.width,
      f.box.height / 2 - u.box.height,
    ];
    assert.ok(
      l.every((d) => Math.abs(d) < landmarkShare * u.box.width),
      `landmarks off by ${l.map((d) => d.toFixed(1))} px`,
    );
    assert.ok(
      b.every((d) => Math.abs(d) < boxShare * u.box.width),
      `box off by ${b.map((d) => d.toFixed(1))} px`,
    );
  };
  // Scaled back to the original's 800 px, the network sees the same face size: only resampling noise remains.
  const same = await detector.detect(big, { detectionSize: 800 });
  assert.equal(same.length, 2);
  for (const f of same) near(f, 0.025, 0.04);
  const byDefault = await detector.detect(big); // 1600 px wide: detected at 1024 and mapped back
  assert.equal(byDefault.length, 2);
  for (const f of byDefault) near(f, 0.05, 0.06);
  const coarse = await detector.detect(big, { detectionSize: 320 });
  assert.equal(coarse.length, 2);
  for (const f of coarse) near(f, 0.1, 0.12); // faces of about 80 px: coarser landmarks
});

test('maxFaces keeps the largest, minFaceSize and minScore drop faces, a photo without a face gives none', async () => {
  const selfie = join(FACES_DIR, 'selfie-many-people.jpg');
  const all = found.get('selfie-many-people.jpg')!.faces;
  const two = await detector.detect(selfie, { maxFaces: 2 });
  assert.deepEqual(two, all.slice(0, 2));
  const big = await detector.detect(selfie, { minFaceSize: 100 });
  assert.deepEqual(
    big,
    all.filter((f) => Math.min(f.box.width, f.box.height) >= 100),
  );
  assert.ok(big.length > 0 && big.length < all.length);
  const sure = await detector.detect(selfie, { minScore: 0.9 });
  assert.deepEqual(
    sure,
    all.filter((f) => f.score >= 0.9),
  );
  assert.ok(sure.length < all.length);

  const sky = await sharp({ create: { width: 400, height: 300, channels: 3, background: { r: 90, g: 140, b: 220 } } })
    .png()
    .toBuffer();
  assert.deepEqual(await detector.detect(sky), []);
  assert.throws(
    () => resolveDetectOptions({ minScore: 2 }),
    /Expected a number between 0 and 1 for minScore but received number 2/,
  );
  assert.throws(() => resolveDetectOptions({ maxFaces: 0 }), /for maxFaces/);
});

test('a file that is not the YuNet detector is refused with a message naming it', async () => {
  await assert.rejects(FaceDetector.open({ model: TINY_CAFFEMODEL }), (err: unknown) => {
    assert.ok(err instanceof VggFaceError && err.code === 'E_MODEL');
    assert.match(err.message, /VGG_FACE\.caffemodel: not an ONNX model, expected the YuNet face detector/);
    return true;
  });
  await assert.rejects(
    FaceDetector.open({ model: join(FACES_DIR, 'no-such.onnx') }),
    /no-such\.onnx: no such file or directory/,
  );
  const closed = await FaceDetector.open({ model: YUNET_MODEL });
  await closed.close();
  await assert.rejects(closed.detect(join(FACES_DIR, 'img1.jpg')), /this FaceDetector was closed/);
});
