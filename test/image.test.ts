/** Issue 2: decoding with sharp. Every format and colour variant becomes the same 8-bit RGB; 224x224 is untouched. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp, { type Sharp } from 'sharp';
import { decodeImage, loadSquare } from '../src/image/decode.js';
import { FACES_DIR, GOLDEN_DIR } from './helpers.js';

const PHOTO = join(FACES_DIR, 'img1.jpg');

/** Mean absolute difference per channel value. */
function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

test('a 224x224 image is used untouched: the bytes are exactly the decoded PNG', async () => {
  const path = join(GOLDEN_DIR, 'img1.png');
  const { data } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  for (const fit of ['crop', 'pad', 'stretch'] as const) {
    const img = await loadSquare(path, 'img1.png', 224, { fit });
    assert.equal(img.width, 224);
    assert.deepEqual(Buffer.from(img.data), data, `fit ${fit} must not resample a 224x224 image`);
  }
  const raw = { data: new Uint8Array(data), width: 224, height: 224, channels: 3 as const };
  assert.equal(
    (await loadSquare(raw, 'raw', 224)).data,
    raw.data,
    'raw 224x224 pixels are passed through without a copy',
  );
});

test('JPEG, PNG, WebP, TIFF, GIF and AVIF of the same picture decode to nearly the same pixels', async () => {
  const reference = await loadSquare(await sharp(PHOTO).resize(224, 224).png().toBuffer(), 'png', 224);
  const encoders: Record<string, (s: Sharp) => Sharp> = {
    jpeg: (s) => s.jpeg({ quality: 95 }),
    webp: (s) => s.webp({ quality: 95 }),
    tiff: (s) => s.tiff(),
    gif: (s) => s.gif(),
    avif: (s) => s.avif({ quality: 90 }),
  };
  for (const [name, encode] of Object.entries(encoders)) {
    const buf = await encode(sharp(PHOTO).resize(224, 224)).toBuffer();
    const img = await loadSquare(buf, name, 224);
    const d = meanAbsDiff(img.data, reference.data);
    // Lossy codecs and GIF's 256-colour palette move pixels a little, not a lot.
    assert.ok(d < (name === 'gif' ? 12 : 4), `${name}: mean difference ${d.toFixed(2)}`);
  }
});

test('grey, CMYK, 16-bit and alpha inputs become 3-channel 8-bit RGB', async () => {
  const base = sharp(PHOTO).resize(224, 224);
  const rgb = await loadSquare(await base.clone().png().toBuffer(), 'rgb', 224);
  const grey = await loadSquare(await base.clone().grayscale().png().toBuffer(), 'grey', 224);
  assert.equal(grey.data.length, 224 * 224 * 3);
  for (let i = 0; i < grey.data.length; i += 3)
    assert.ok(
      grey.data[i] === grey.data[i + 1] && grey.data[i + 1] === grey.data[i + 2],
      'grey pixels have equal channels',
    );

  const cmyk = await loadSquare(await base.clone().toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(), 'cmyk', 224);
  assert.equal(cmyk.data.length, 224 * 224 * 3);
  assert.ok(meanAbsDiff(cmyk.data, rgb.data) < 12, 'CMYK round trip stays close to RGB');

  const sixteen = await loadSquare(await base.clone().toColourspace('rgb16').png().toBuffer(), '16-bit', 224);
  assert.ok(meanAbsDiff(sixteen.data, rgb.data) < 1.01, '16-bit PNG reduces to the same 8-bit values');

  const alpha = await loadSquare(await base.clone().ensureAlpha(0.5).png().toBuffer(), 'alpha', 224);
  assert.equal(alpha.data.length, 224 * 224 * 3);
  assert.ok(meanAbsDiff(alpha.data, rgb.data) < 0.01, 'alpha is dropped, colour kept');
});

test('EXIF orientation is applied: a rotated JPEG tagged orientation 6 decodes upright', async () => {
  const upright = await sharp(PHOTO).resize(300, 200, { fit: 'fill' }).jpeg({ quality: 95 }).toBuffer();
  // Store the pixels rotated 90 degrees counter-clockwise and tag orientation 6 (display: rotate 90 clockwise).
  const stored = await sharp(upright).rotate(-90).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
  const meta = await sharp(stored).metadata();
  assert.equal(meta.orientation, 6);
  assert.equal(meta.width, 200, 'stored sideways');
  const a = await decodeImage(upright, 'upright');
  const b = await decodeImage(stored, 'rotated');
  assert.deepEqual([b.width, b.height], [300, 200]);
  assert.ok(meanAbsDiff(a.data, b.data) < 4, 'same picture after orientation');
});

test('fit: crop keeps the centre, pad adds black borders, stretch fills', async () => {
  // 400x200: left half red, right half blue, a green stripe in the middle.
  const w = 400;
  const h = 200;
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      if (x >= 190 && x < 210) px[o + 1] = 255;
      else if (x < 200) px[o] = 255;
      else px[o + 2] = 255;
    }
  }
  const input = { data: new Uint8Array(px), width: w, height: h, channels: 3 as const };
  const at = (img: { data: Uint8Array }, x: number, y: number) => [
    ...img.data.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3),
  ];
  const crop = await loadSquare(input, 'crop', 224, { fit: 'crop' });
  assert.deepEqual(at(crop, 5, 112), [255, 0, 0], 'crop: left edge is red (the centre 200x200 was kept)');
  assert.deepEqual(at(crop, 218, 112), [0, 0, 255]);
  const pad = await loadSquare(input, 'pad', 224, { fit: 'pad' });
  assert.deepEqual(at(pad, 112, 2), [0, 0, 0], 'pad: black band above');
  assert.deepEqual(at(pad, 5, 112), [255, 0, 0]);
  const stretch = await loadSquare(input, 'stretch', 224, { fit: 'stretch' });
  assert.deepEqual(at(stretch, 112, 2)[1], 255, 'stretch: the stripe spans the full height');
});

test('raw pixel input is checked', async () => {
  await assert.rejects(
    loadSquare({ data: new Uint8Array(10), width: 2, height: 2, channels: 3 }, 'raw', 224),
    /Expected 12 bytes \(2x2x3 RGB\) for raw data but received Uint8Array of 10 bytes/,
  );
  await assert.rejects(
    loadSquare(42 as never, 'input #1', 224),
    // line-width: regex
    /Expected a path, a Buffer\/Uint8Array of an encoded image, or \{data, width, height\} RGB pixels for input #1 but received number 42/,
  );
});
