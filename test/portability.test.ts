/**
 * Issue 2: the exported model is self-contained. It runs unchanged in another ONNX Runtime build
 * (onnxruntime-web's WebAssembly backend, as a browser would run it) and without graph optimisations,
 * and both reproduce the golden descriptors from the raw RGB pixels alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import * as ortWeb from 'onnxruntime-web';
import { openEngine } from '../src/runtime/onnxruntime.js';
import { assertClose, golden, GOLDEN_DIR, GOLDEN_IMAGES, runCli, tempDir } from './helpers.js';

async function goldenPixels(): Promise<Uint8Array> {
  const pixels = new Uint8Array(GOLDEN_IMAGES.length * 224 * 224 * 3);
  for (let i = 0; i < GOLDEN_IMAGES.length; i++) {
    const { data } = await sharp(join(GOLDEN_DIR, GOLDEN_IMAGES[i]))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    pixels.set(data, i * 224 * 224 * 3);
  }
  return pixels;
}

test('the converted model runs unchanged in onnxruntime-web (wasm) and with optimisations off', async (t) => {
  const onnx = join(tempDir(t), 'vgg.onnx');
  const conv = await runCli(['convert', join(GOLDEN_DIR, 'VGG_FACE_v2.caffemodel'), '-o', onnx]);
  if (conv.code !== 0) throw new Error(conv.stderr);
  const pixels = await goldenPixels();
  const n = GOLDEN_IMAGES.length;

  ortWeb.env.wasm.numThreads = 1;
  const web = await ortWeb.InferenceSession.create(readFileSync(onnx));
  const out = await web.run({ image: new ortWeb.Tensor('uint8', pixels, [n, 224, 224, 3]) });
  const plain = await openEngine(onnx, { optimization: 'disabled' });
  t.after(() => plain.close());
  const out2 = await plain.run({ image: { data: pixels, dims: [n, 224, 224, 3] } }, ['descriptor', 'fc8']);
  GOLDEN_IMAGES.forEach((img, i) => {
    const g = golden.images[img];
    assertClose(
      (out.descriptor.data as Float32Array).subarray(i * 32, (i + 1) * 32),
      g.fc7_l2,
      1e-4,
      `${img} descriptor (web)`,
    );
    assertClose((out.fc8.data as Float32Array).subarray(i * 10, (i + 1) * 10), g.fc8, 1e-4, `${img} fc8 (web)`);
    assertClose(out2.descriptor.data.subarray(i * 32, (i + 1) * 32), g.fc7_l2, 1e-4, `${img} descriptor (unoptimised)`);
    assertClose(out2.fc8.data.subarray(i * 10, (i + 1) * 10), g.fc8, 1e-4, `${img} fc8 (unoptimised)`);
  });
});
