/**
 * Whole photos through the library (describeFaces) and the CLI (describe, faces), with the tiny golden network
 * and the shared detector. `--detector none` must keep the crop-as-given numbers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { VggFace } from '../src/vggface.js';
import { FaceDetector, resolveDetectOptions } from '../src/face/detector.js';
import { resolveAlignOptions } from '../src/face/align.js';
import { extractFaces } from '../src/face/pipeline.js';
import { assertClose, FACES_DIR, golden, GOLDEN_DIR, GOLDEN_IMAGES, jsonLines, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

const COUPLE = join(FACES_DIR, 'couple.jpg');
const IMG1 = join(FACES_DIR, 'img1.jpg');

let model: VggFace;
let work: string;
let sky: string;
let notImage: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'vggface-faces-'));
  model = await VggFace.load({
    weights: TINY_CAFFEMODEL,
    cacheDir: join(work, 'cache'),
    threads: 2,
    detectorModel: YUNET_MODEL,
  });
  sky = join(work, 'sky.png');
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 90, g: 140, b: 220 } } })
    .png()
    .toFile(sky);
  notImage = join(work, 'notes.jpg');
  writeFileSync(notImage, 'not a photo');
});
after(async () => {
  await model.close();
  rmSync(work, { recursive: true, force: true });
});

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

test(
  'describeFaces: one result per photo in order; faces ' + 'with descriptors, no face, and an unreadable file',
  async () => {
    const results = [];
    const progress: number[] = [];
    for await (const r of model.describeFaces([COUPLE, sky, notImage, IMG1], {
      batchSize: 2,
      onProgress: (d) => progress.push(d),
    }))
      results.push(r);
    assert.deepEqual(
      results.map((r) => r.index),
      [0, 1, 2, 3],
    );
    assert.deepEqual(
      results.map((r) => r.label),
      [COUPLE, sky, notImage, IMG1],
    );
    assert.deepEqual(progress, [2, 4]);
    assert.equal(results[0].faces?.length, 2);
    assert.deepEqual(results[1].faces, []);
    assert.equal(results[2].error?.code, 'E_IMAGE');
    assert.match(results[2].error!.message, /notes\.jpg: not a decodable image/);
    assert.equal(results[3].faces?.length, 1);
    for (const { face, descriptor } of [...results[0].faces!, ...results[3].faces!]) {
      assert.equal(descriptor.length, model.dimension());
      assert.ok(Math.abs(norm(descriptor) - 1) < 1e-5);
      assert.ok(face.score > 0.9 && face.box.width > 100);
    }
    // The two people of the couple get different descriptors.
    const [a, b] = results[0].faces!.map((f) => f.descriptor);
    assert.ok(a.some((x, i) => Math.abs(x - b[i]) > 1e-3));
  },
);

test('describeFaces describes exactly the aligned crop: the same vector as describe() on that crop', async () => {
  const detector = await FaceDetector.open({ model: YUNET_MODEL, threads: 1 });
  try {
    const photo = await extractFaces(
      detector,
      COUPLE,
      'couple',
      resolveDetectOptions({}),
      resolveAlignOptions({ align: '5pt', margin: 0.3 }),
    );
    let got;
    for await (const r of model.describeFaces([COUPLE], {
      detector,
      align: '5pt',
      margin: 0.3,
      layer: 'fc6',
      normalize: false,
    }))
      got = r;
    assert.equal(got!.faces!.length, photo.faces.length);
    for (let i = 0; i < photo.faces.length; i++) {
      assert.deepEqual(got!.faces![i].face, photo.faces[i].face);
      const direct = await model.describe(photo.faces[i].crop, { layer: 'fc6', normalize: false });
      assertClose(got!.faces![i].descriptor, direct, 1e-6, `face ${i}`);
    }
    // maxFaces keeps the larger one.
    for await (const r of model.describeFaces([COUPLE], { detector, maxFaces: 1 }))
      assert.deepEqual(
        r.faces!.map((f) => f.face),
        [photo.faces[0].face],
      );
  } finally {
    await detector.close();
  }
});

test('describeFaces rejects bad options with the parameter named', async () => {
  await assert.rejects(async () => {
    for await (const _ of model.describeFaces([COUPLE], { align: 'tilt' as never }));
  }, /Expected one of none, eyes, 5pt for align but received "tilt"/);
  await assert.rejects(async () => {
    for await (const _ of model.describeFaces([COUPLE], { detector: {} as never }));
  }, /Expected a FaceDetector for detector/);
});

test(
  'CLI describe on whole photos: one JSON line per face with box, score, ' +
    'landmarks; a photo without a face is reported',
  async (t) => {
    const env = { VGGFACE_CACHE: join(tempDir(t), 'cache'), VGGFACE_DETECTOR_MODEL: YUNET_MODEL };
    const r = await runCli(['describe', '-w', TINY_CAFFEMODEL, COUPLE, sky, IMG1], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, `vggface: ${sky}: no face found\n`);
    const lines = jsonLines<{ image: string; faces?: number; face?: Record<string, unknown>; descriptor?: number[] }>(
      r.stdout,
    );
    assert.deepEqual(
      lines.map((l) => l.image),
      [COUPLE, COUPLE, sky, IMG1],
    );
    assert.deepEqual(lines[2], { image: sky, faces: 0 });
    for (const l of [lines[0], lines[1], lines[3]]) {
      assert.deepEqual(Object.keys(l), ['image', 'face', 'descriptor']);
      const face = l.face as {
        box: Record<string, number>;
        score: number;
        landmarks: Record<string, [number, number]>;
      };
      assert.deepEqual(Object.keys(face), ['box', 'score', 'landmarks']);
      assert.deepEqual(Object.keys(face.box), ['x', 'y', 'width', 'height']);
      assert.deepEqual(Object.keys(face.landmarks), ['rightEye', 'leftEye', 'noseTip', 'mouthRight', 'mouthLeft']);
      assert.ok(face.score > 0.9 && face.score <= 1);
      assert.ok(face.landmarks.rightEye[1] < face.landmarks.noseTip[1]);
      assert.equal(l.descriptor!.length, 32);
      assert.ok(Math.abs(Math.hypot(...l.descriptor!) - 1) < 1e-5);
    }
    // The same numbers as the library, to the printed precision.
    let lib;
    for await (const x of model.describeFaces([IMG1])) lib = x;
    assertClose(lines[3].descriptor!, lib!.faces![0].descriptor, 1e-6);
    assert.equal((lines[3].face as { box: { x: number } }).box.x, Math.round(lib!.faces![0].face.box.x * 100) / 100);
  },
);

test('CLI describe --detector none keeps the crop-as-given descriptors (golden numbers)', async (t) => {
  const env = { VGGFACE_CACHE: join(tempDir(t), 'cache') };
  const images = GOLDEN_IMAGES.map((i) => join(GOLDEN_DIR, i));
  const r = await runCli(['describe', '--detector', 'none', '-w', TINY_CAFFEMODEL, ...images], { env });
  assert.equal(r.code, 0, r.stderr);
  const lines = jsonLines<{ image: string; descriptor: number[] }>(r.stdout);
  assert.deepEqual(
    lines.map((l) => Object.keys(l)),
    images.map(() => ['image', 'descriptor']),
  );
  lines.forEach((l, i) => assertClose(l.descriptor, golden.images[GOLDEN_IMAGES[i]].fc7_l2, 1e-4, GOLDEN_IMAGES[i]));
});

test(
  'CLI describe: detection flags with --detector none, ' + '--fit with detection, and unknown values are usage errors',
  async () => {
    const cases: [string[], RegExp][] = [
      [['--detector', 'none', '--align', 'eyes'], /--align: only with face detection, not with --detector none/],
      [
        ['--detector', 'none', '--max-faces', '2', '--margin', '0.1'],
        /--margin, --max-faces: only with face detection/,
      ],
      [['--fit', 'pad'], /--fit: only with --detector none/],
      [['--detector', 'mtcnn'], /Expected one of yunet, none for --detector but received "mtcnn"/],
      [['--align', 'tilt'], /Expected one of none, eyes, 5pt for --align but received "tilt"/],
      [['--min-score', '1.5'], /Expected a number between 0 and 1 for --min-score but received "1.5"/],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['describe', '-w', TINY_CAFFEMODEL, ...flags, IMG1], {
        env: { VGGFACE_DETECTOR_MODEL: YUNET_MODEL },
      });
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stdout, '');
    }
  },
);

test('CLI faces writes one upright 224x224 PNG per face and a JSON line naming it', async (t) => {
  const dir = tempDir(t);
  const out = join(dir, 'crops');
  const r = await runCli(
    ['faces', COUPLE, sky, join(FACES_DIR, 'img2.jpg'), '-o', out, '--detector-model', YUNET_MODEL],
    { env: { VGGFACE_CACHE: join(dir, 'cache') } },
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = jsonLines<{ image: string; faces?: number; face?: { score: number }; crop?: string }>(r.stdout);
  assert.deepEqual(
    lines.map((l) => l.crop ?? l.faces),
    [join(out, 'couple-1.png'), join(out, 'couple-2.png'), 0, join(out, 'img2-1.png')],
  );
  const detector = await FaceDetector.open({ model: YUNET_MODEL, threads: 1 });
  try {
    for (const l of lines.filter((x) => x.crop)) {
      const png = readFileSync(l.crop!);
      const meta = await sharp(png).metadata();
      assert.deepEqual([meta.format, meta.width, meta.height], ['png', 224, 224]);
      const again = await detector.detect(png);
      assert.equal(again.length, 1, l.crop);
      // The face is in the middle of the crop, the right way up (the eye angle itself is tested on the landmarks).
      const { noseTip, rightEye, leftEye, mouthLeft } = again[0].landmarks;
      assert.ok(
        noseTip[0] > 224 * 0.4 && noseTip[0] < 224 * 0.6 && noseTip[1] > 224 * 0.45 && noseTip[1] < 224 * 0.65,
        `${l.crop}: nose at ${noseTip}`,
      );
      assert.ok(rightEye[0] < leftEye[0] && leftEye[1] < noseTip[1] && noseTip[1] < mouthLeft[1], l.crop);
    }
  } finally {
    await detector.close();
  }
  const sized = await runCli([
    'faces',
    IMG1,
    '-o',
    out,
    '--size',
    '112',
    '--align',
    'none',
    '--detector-model',
    YUNET_MODEL,
  ]);
  assert.equal(sized.code, 0, sized.stderr);
  assert.equal((await sharp(join(out, 'img1-1.png')).metadata()).width, 112);
});
