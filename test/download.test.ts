/** Issue 2: the official weights download path, against a local HTTP server serving tarballs the tests build. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import * as tar from 'tar';
import type { VggFaceError } from '../src/errors.js';
import { ensureOfficialWeights } from '../src/weights/official.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';
import { serveFile } from './http-fixture.js';

const TINY = readFileSync(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'));

/** vgg_face_caffe.tar.gz as the release lays it out, with the given caffemodel bytes. */
async function buildTarball(dir: string, caffemodel: Buffer | undefined, gzip = true): Promise<Buffer> {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'vgg_face_caffe'), { recursive: true });
  writeFileSync(
    join(src, 'vgg_face_caffe', 'VGG_FACE_deploy.prototxt'),
    readFileSync(join(GOLDEN_DIR, '..', '..', 'reference', 'VGG_FACE_deploy.prototxt')),
  );
  writeFileSync(join(src, 'vgg_face_caffe', 'names.txt'), 'A.J._Buckley\n');
  const entries = ['vgg_face_caffe/VGG_FACE_deploy.prototxt', 'vgg_face_caffe/names.txt'];
  if (caffemodel) {
    writeFileSync(join(src, 'vgg_face_caffe', 'VGG_FACE.caffemodel'), caffemodel);
    entries.push('vgg_face_caffe/VGG_FACE.caffemodel');
  }
  const out = join(dir, 'vgg_face_caffe.tar.gz');
  await tar.c({ gzip, cwd: src, file: out }, entries);
  return readFileSync(out);
}

test(
  'download, extract and reuse: the caffemodel lands in the cache, the ' +
    'tarball is removed, a second call does not fetch',
  async (t) => {
    const dir = tempDir(t);
    const server = await serveFile({ body: await buildTarball(dir, TINY), etag: '"v1"' });
    t.after(() => server.close());
    const cacheDir = join(dir, 'cache');
    let progressCalls = 0;
    const path = await ensureOfficialWeights({
      cacheDir,
      url: server.url,
      minBytes: 1000,
      onProgress: () => progressCalls++,
    });
    assert.equal(path, join(cacheDir, 'weights', 'VGG_FACE.caffemodel'));
    assert.deepEqual(readFileSync(path), TINY);
    assert.ok(progressCalls > 0);
    assert.deepEqual(
      readdirSync(join(cacheDir, 'weights')),
      ['VGG_FACE.caffemodel'],
      'no tarball, part file or staging folder left',
    );
    await ensureOfficialWeights({ cacheDir, url: server.url, minBytes: 1000 });
    assert.equal(server.requests.length, 1, 'second call used the cache');
  },
);

test('an interrupted download resumes with a Range request when the server still has the same file', async (t) => {
  const dir = tempDir(t);
  const body = await buildTarball(dir, TINY);
  const half = Math.floor(body.length / 2);
  const server = await serveFile({ body, etag: '"v1"', cutAfter: half });
  t.after(() => server.close());
  const cacheDir = join(dir, 'cache');
  const onProgress = (p: { received: number }) => p.received >= half && server.cut();
  await assert.rejects(
    ensureOfficialWeights({ cacheDir, url: server.url, minBytes: 1000, onProgress }),
    (err: VggFaceError) => {
      assert.equal(err.code, 'E_NETWORK');
      assert.match(err.message, /Run the same command again to resume/);
      return true;
    },
  );
  const part = join(cacheDir, 'weights', 'vgg_face_caffe.tar.gz.part');
  const partial = statSync(part).size;
  assert.ok(partial > 0 && partial < body.length, `partial file of ${partial} bytes`);
  const path = await ensureOfficialWeights({ cacheDir, url: server.url, minBytes: 1000 });
  assert.equal(server.requests[1].range, `bytes=${partial}-`);
  assert.equal(server.requests[1]['if-range'], '"v1"');
  assert.deepEqual(readFileSync(path), TINY);
});

test('when the file changed on the server (new ETag), the download restarts from zero', async (t) => {
  const dir = tempDir(t);
  const body = await buildTarball(dir, TINY);
  const server = await serveFile({ body, etag: '"v1"', cutAfter: 1000 });
  t.after(() => server.close());
  const cacheDir = join(dir, 'cache');
  const onProgress = (p: { received: number }) => p.received >= 1000 && server.cut();
  await assert.rejects(ensureOfficialWeights({ cacheDir, url: server.url, minBytes: 1000, onProgress }), /resume/);
  assert.equal(statSync(join(cacheDir, 'weights', 'vgg_face_caffe.tar.gz.part')).size, 1000);
  server.file.etag = '"v2"';
  const path = await ensureOfficialWeights({ cacheDir, url: server.url, minBytes: 1000 });
  assert.deepEqual(readFileSync(path), TINY, 'a restart, not a splice of two versions');
});

/** A loopback port nobody listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('offline: a clear message that says how to pass a local file', async (t) => {
  const dir = tempDir(t);
  const url = `http://127.0.0.1:${await closedPort()}/vgg_face_caffe.tar.gz`;
  const r = await runCli(['describe', '--detector', 'none', join(GOLDEN_DIR, 'img1.png')], {
    env: { VGGFACE_CACHE: dir, VGGFACE_WEIGHTS: '', VGGFACE_WEIGHTS_URL: url },
  });
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`cannot download ${url}: ECONNREFUSED`), r.stderr);
  assert.match(r.stderr, /pass them with --weights FILE \(or set VGGFACE_WEIGHTS=FILE\)/);
  assert.equal(existsSync(join(dir, 'weights', 'VGG_FACE.caffemodel')), false);
});

test('HTTP errors, corrupt archives and archives without the model are refused and cleaned up', async (t) => {
  const dir = tempDir(t);
  const cacheDir = join(dir, 'cache');
  const missing = await serveFile({ body: Buffer.alloc(0), etag: '"x"', status: 404 });
  t.after(() => missing.close());
  await assert.rejects(ensureOfficialWeights({ cacheDir, url: missing.url, minBytes: 1000 }), /HTTP 404/);

  const good = await buildTarball(join(dir, 'a'), TINY);
  const corrupt = Buffer.from(good);
  corrupt.fill(0x55, 40, Math.min(400, corrupt.length)); // damage the deflate stream
  const s1 = await serveFile({ body: corrupt, etag: '"c"' });
  t.after(() => s1.close());
  await assert.rejects(
    ensureOfficialWeights({ cacheDir, url: s1.url, minBytes: 1000 }),
    /the downloaded archive is corrupt .*it was removed, run again/,
  );
  assert.equal(existsSync(join(cacheDir, 'weights', 'vgg_face_caffe.tar.gz')), false);

  const s2 = await serveFile({ body: await buildTarball(join(dir, 'b'), undefined), etag: '"n"' });
  t.after(() => s2.close());
  await assert.rejects(
    ensureOfficialWeights({ cacheDir, url: s2.url, minBytes: 1000 }),
    /the archive has no VGG_FACE\.caffemodel/,
  );

  const s3 = await serveFile({
    body: await buildTarball(join(dir, 'c'), Buffer.from('not a model at all, just text'.repeat(100))),
    etag: '"t"',
  });
  t.after(() => s3.close());
  await assert.rejects(
    ensureOfficialWeights({ cacheDir, url: s3.url, minBytes: 1000 }),
    /VGG_FACE\.caffemodel in the archive is not the VGG-Face model \(2900 bytes, not a Caffe model/,
  );

  // Without a lowered minimum, the narrow model is too small to be the official release.
  const s4 = await serveFile({ body: await buildTarball(join(dir, 'd'), TINY), etag: '"s"' });
  t.after(() => s4.close());
  await assert.rejects(ensureOfficialWeights({ cacheDir, url: s4.url }), /expected at least 580011512 bytes/);
  assert.deepEqual(readdirSync(join(cacheDir, 'weights')), [], 'nothing half-written in the cache');
});
