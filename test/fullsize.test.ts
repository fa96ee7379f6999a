// @tags: full-size
/**
 * Issue 2: the real VGG-Face dimensions end to end. A caffemodel of the published size (random weights, written by
 * the project's own writer) is served as the official tarball by a local HTTP server; the CLI downloads it with no
 * --weights, converts it, and describes a photo; a second load hits the conversion cache.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tar from 'tar';
import { VggFace } from '../src/vggface.js';
import { FULL_WIDTHS } from '../src/weights/topology.js';
import { randomWeights } from './fixtures/random-weights.js';
import { writeCaffeModel } from './fixtures/caffe-writer.js';
import { FACES_DIR, jsonLines, runCli, tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';
import { serveFile } from './http-fixture.js';

test(
  'full-size caffemodel: download with no --weights, ' + 'convert, describe (4096-d unit norm), then a cache hit',
  async (t) => {
    const dir = tempDir(t);
    const src = join(dir, 'src', 'vgg_face_caffe');
    mkdirSync(src, { recursive: true });
    writeCaffeModel(join(src, 'VGG_FACE.caffemodel'), randomWeights(FULL_WIDTHS, 11), { version: 1 });
    const modelBytes = statSync(join(src, 'VGG_FACE.caffemodel')).size;
    assert.ok(modelBytes > 580_011_512, `full-size caffemodel is ${modelBytes} bytes`);
    // Uncompressed tar keeps the test fast; the gzip path is covered in download.test.ts.
    const tarball = join(dir, 'vgg_face_caffe.tar');
    await tar.c({ cwd: join(dir, 'src'), file: tarball }, ['vgg_face_caffe/VGG_FACE.caffemodel']);
    const server = await serveFile({ body: () => readFileSync(tarball), etag: '"full"' });
    t.after(() => server.close());

    const cacheDir = join(dir, 'cache');
    const env = {
      VGGFACE_CACHE: cacheDir,
      VGGFACE_WEIGHTS: '',
      VGGFACE_WEIGHTS_URL: server.url,
      VGGFACE_DETECTOR_MODEL: YUNET_MODEL,
    };
    const photos = [join(FACES_DIR, 'img1.jpg'), join(FACES_DIR, 'img2.jpg')];
    const r = await runCli(['describe', ...photos], { env });
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines<{ image: string; descriptor: number[] }>(r.stdout);
    assert.equal(lines.length, 2);
    for (const l of lines) {
      assert.equal(l.descriptor.length, 4096);
      const norm = Math.sqrt(l.descriptor.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-5, `unit norm, got ${norm}`);
      assert.ok(l.descriptor.filter((x) => x > 0).length > 100, 'fc7 is not degenerate');
    }
    assert.notDeepEqual(lines[0].descriptor, lines[1].descriptor);
    assert.equal(statSync(join(cacheDir, 'weights', 'VGG_FACE.caffemodel')).size, modelBytes);
    assert.equal(readdirSync(join(cacheDir, 'models')).length, 1);

    const model = await VggFace.load({ cacheDir, detectorModel: YUNET_MODEL });
    t.after(() => model.close());
    assert.equal(model.origin, 'cached', 'the second load reuses the conversion');
    assert.equal(server.requests.length, 1, 'and does not download again');
    assert.equal(model.dimension(), 4096);
    assert.deepEqual(model.info.topology, { conv: [...FULL_WIDTHS.conv], fc6: 4096, fc7: 4096, fc8: 2622 });
    let again: Float32Array | undefined;
    for await (const photo of model.describeFaces([photos[0]])) again = photo.faces?.[0]?.descriptor;
    assert.ok(again, 'a face in img1.jpg');
    const first = Float32Array.from(lines[0].descriptor);
    let dot = 0;
    for (let i = 0; i < 4096; i++) dot += again[i] * first[i];
    assert.ok(dot > 0.99999, `same descriptor from the cached model and the CLI (cosine ${dot})`);

    // ONNX Runtime's run holds its thread for the whole batch (about 0.5 s here); the model runs in a worker, so this
    // thread keeps ticking meanwhile (a blocked event loop would show one gap as long as the run).
    let largestGap = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      largestGap = Math.max(largestGap, now - last);
      last = now;
    }, 5);
    const started = performance.now();
    await model.describe(
      Array.from({ length: 8 }, () => ({
        data: new Uint8Array(224 * 224 * 3),
        width: 224,
        height: 224,
        channels: 3 as const,
      })),
    );
    const runMs = performance.now() - started;
    await new Promise((r) => setTimeout(r, 30));
    clearInterval(ticker);
    assert.ok(
      largestGap < runMs / 2,
      `event loop stalled ${largestGap.toFixed(0)} ms during a ${runMs.toFixed(0)} ms batch`,
    );
  },
);
