/**
 * Fetching the detector on first use, against HTTP servers started here (tests never reach the network):
 * the published file is accepted and cached, anything else is refused and never reaches the cache.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { VggFaceError } from '../src/errors.js';
import { ensureDetectorModel, YUNET_BYTES, YUNET_FILE, YUNET_SHA256, YUNET_URL } from '../src/face/detector-model.js';
import { sha256 } from '../src/util/hash.js';
import { FACES_DIR, runCli, tempDir, jsonLines } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

// The tests choose the model themselves.
delete process.env.VGGFACE_DETECTOR_MODEL;
delete process.env.VGGFACE_DETECTOR_URL;

const PUBLISHED = readFileSync(YUNET_MODEL);

/** Serves `body` at every path; counts requests. */
async function serve(body: Buffer): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server: Server = createServer((_req, res) => {
    count++;
    res.writeHead(200, { 'content-length': body.length, etag: '"v1"', 'content-type': 'application/octet-stream' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/models/face_detection_yunet/${YUNET_FILE}`,
    requests: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('the published model constants match the shared copy', () => {
  assert.equal(PUBLISHED.length, YUNET_BYTES);
  assert.equal(sha256(PUBLISHED), YUNET_SHA256);
  assert.equal(
    YUNET_URL,
    'https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx',
  );
});

test(
  'first use downloads the published file into <cache>/detector; ' + 'later uses read the cache without the network',
  async (t) => {
    const cacheDir = tempDir(t);
    const server = await serve(PUBLISHED);
    let path: string;
    try {
      path = await ensureDetectorModel({ cacheDir, url: server.url });
      assert.equal(server.requests(), 1);
    } finally {
      await server.close();
    }
    assert.equal(path, join(cacheDir, 'detector', YUNET_FILE));
    assert.equal(sha256(readFileSync(path)), YUNET_SHA256);
    assert.deepEqual(readdirSync(join(cacheDir, 'detector')), [YUNET_FILE]);
    // The server is gone: the cached file is used as it is.
    assert.equal(await ensureDetectorModel({ cacheDir, url: server.url }), path);
  },
);

test(
  'a download with the wrong checksum is refused and ' + 'removed, and a damaged cache entry is fetched again',
  async (t) => {
    const cacheDir = tempDir(t);
    const tampered = Buffer.from(PUBLISHED);
    tampered[tampered.length >> 1] ^= 0xff; // same size, one byte changed
    const bad = await serve(tampered);
    try {
      await assert.rejects(ensureDetectorModel({ cacheDir, url: bad.url }), (err: unknown) => {
        assert.ok(err instanceof VggFaceError && err.code === 'E_FORMAT', String(err));
        assert.match(
          err.message,
          new RegExp(
            `is not ${YUNET_FILE} \\(229738 bytes, sha256 [0-9a-f]{64}; expected ` +
              `229738 bytes, sha256 ${YUNET_SHA256}\\); it was removed`,
          ),
        );
        return true;
      });
    } finally {
      await bad.close();
    }
    assert.deepEqual(readdirSync(join(cacheDir, 'detector')), []);

    // A cached file damaged later (disk error, partial copy) is not used: the published file is fetched again.
    const good = await serve(PUBLISHED);
    try {
      const path = await ensureDetectorModel({ cacheDir, url: good.url });
      writeFileSync(path, tampered);
      assert.equal(await ensureDetectorModel({ cacheDir, url: good.url }), path);
      assert.equal(good.requests(), 2);
      assert.equal(sha256(readFileSync(path)), YUNET_SHA256);
    } finally {
      await good.close();
    }
  },
);

test('offline: a clear message that says how to go on without the network', async (t) => {
  const cacheDir = tempDir(t);
  const server = await serve(PUBLISHED);
  const url = server.url;
  await server.close(); // nothing listens on that port any more
  await assert.rejects(ensureDetectorModel({ cacheDir, url }), (err: unknown) => {
    assert.ok(err instanceof VggFaceError && err.code === 'E_NETWORK', String(err));
    assert.match(err.message, /^cannot download http:\/\/127\.0\.0\.1:\d+\/.*: ECONNREFUSED\. /);
    assert.match(err.message, /pass it with --detector-model FILE \(or set VGGFACE_DETECTOR_MODEL=FILE\)/);
    assert.match(err.message, /--detector none/);
    return true;
  });
  assert.ok(!existsSync(join(cacheDir, 'detector', YUNET_FILE)));
});

test('a model given by path or $VGGFACE_DETECTOR_MODEL is used as it is, after checking it is YuNet', async (t) => {
  const cacheDir = tempDir(t);
  assert.equal(await ensureDetectorModel({ cacheDir, model: YUNET_MODEL }), YUNET_MODEL);
  process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;
  try {
    assert.equal(await ensureDetectorModel({ cacheDir }), YUNET_MODEL);
  } finally {
    delete process.env.VGGFACE_DETECTOR_MODEL;
  }
  assert.ok(!existsSync(join(cacheDir, 'detector')), 'nothing downloaded');
  await assert.rejects(
    ensureDetectorModel({ cacheDir, model: TINY_CAFFEMODEL }),
    /not an ONNX model, expected the YuNet face detector/,
  );
});

test(
  'vggface faces fetches the detector on first use ' + 'through $VGGFACE_DETECTOR_URL and writes the crops',
  async (t) => {
    const dir = tempDir(t);
    const server = await serve(PUBLISHED);
    try {
      const r = await runCli(['faces', join(FACES_DIR, 'img1.jpg'), '-o', join(dir, 'crops')], {
        env: { VGGFACE_CACHE: join(dir, 'cache'), VGGFACE_DETECTOR_URL: server.url },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonLines(r.stdout).length, 1);
      assert.equal(server.requests(), 1);
    } finally {
      await server.close();
    }
    assert.ok(existsSync(join(dir, 'cache', 'detector', YUNET_FILE)));
    assert.ok(existsSync(join(dir, 'crops', 'img1-1.png')));
  },
);
