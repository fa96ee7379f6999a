/** One descriptor per photo for verify, eval and galleries: the largest face, or the image as given. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { VggFace } from '../src/vggface.js';
import { FACES_DIR, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

test(
  'describePhotos: the largest face of each photo, "no face ' +
    'found" for a photo without one, crops with faces: none',
  async (t) => {
    const dir = tempDir(t);
    const blank = join(dir, 'wall.png');
    await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 90, g: 120, b: 150 } } })
      .png()
      .toFile(blank);
    const model = await VggFace.load({
      weights: TINY_CAFFEMODEL,
      cacheDir: join(dir, 'cache'),
      detectorModel: YUNET_MODEL,
    });
    t.after(() => model.close());
    const couple = join(FACES_DIR, 'couple.jpg');
    const results = [];
    for await (const r of model.describePhotos([couple, blank, join(FACES_DIR, 'img1.jpg')])) results.push(r);
    assert.deepEqual(
      results.map((r) => r.index),
      [0, 1, 2],
    );
    assert.match(results[1].error!.message, /wall\.png: no face found/);
    const all = [];
    for await (const r of model.describeFaces([couple])) all.push(...r.faces!);
    assert.equal(all.length, 2);
    const largest = all.reduce((a, b) =>
      a.face.box.width * a.face.box.height >= b.face.box.width * b.face.box.height ? a : b,
    );
    assert.deepEqual([...results[0].descriptor!], [...largest.descriptor], 'the largest face of the couple');
    assert.deepEqual(results[0].face!.box, largest.face.box);

    const crops = [];
    for await (const r of model.describePhotos([couple], { faces: 'none', fit: 'pad' })) crops.push(r.descriptor!);
    assert.deepEqual([...crops[0]], [...(await model.describe(couple, { fit: 'pad' }))]);
    await assert.rejects(async () => {
      for await (const r of model.describePhotos([couple], { fit: 'pad' })) void r;
    }, /Expected undefined when faces are detected \(use faces: 'none' for crops\) for fit but received "pad"/);
  },
);

test('verify on a photo without a face: exit 1 naming it; --fit needs --detector none', async (t) => {
  const dir = tempDir(t);
  const blank = join(dir, 'wall.png');
  await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 90, g: 120, b: 150 } } })
    .png()
    .toFile(blank);
  const env = { VGGFACE_CACHE: join(dir, 'cache'), VGGFACE_DETECTOR_MODEL: YUNET_MODEL };
  const r = await runCli(['verify', join(FACES_DIR, 'img1.jpg'), blank, '-w', TINY_CAFFEMODEL, '--threshold', '0.3'], {
    env,
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /wall\.png: no face found/);
  const fit = await runCli(
    ['verify', join(FACES_DIR, 'img1.jpg'), blank, '-w', TINY_CAFFEMODEL, '--threshold', '0.3', '--fit', 'pad'],
    { env },
  );
  assert.equal(fit.code, 2);
  assert.match(fit.stderr, /--fit: only with --detector none/);
  const crops = await runCli(
    [
      'verify',
      join(FACES_DIR, 'img1.jpg'),
      blank,
      '-w',
      TINY_CAFFEMODEL,
      '--threshold',
      '0.3',
      '--detector',
      'none',
      '--fit',
      'pad',
    ],
    { env },
  );
  assert.equal(crops.code, 0, crops.stderr);
  assert.deepEqual(Object.keys(JSON.parse(crops.stdout)), ['verified', 'distance', 'threshold', 'metric']);
});
