/**
 * Issue 11: `vggface weights fetch|list|verify`, run as a user runs them, against local servers and the golden files.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tar from 'tar';
import { convertWeightsToOnnx } from '../src/onnx/convert.js';
import { fetchWeights, OFFICIAL_MIN_BYTES, WEIGHT_SOURCES } from '../src/weights/official.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';

const TINY_IDENTITY = '7295bdd4c5cf082ca68a1dc0e735046156d8d6ca8b12ad1cc20cb43b53782fb2';
const TINY_H5 = readFileSync(join(GOLDEN_DIR, 'vgg_face_weights.h5'));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

async function tinyTarball(dir: string): Promise<string> {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'vgg_face_caffe'), { recursive: true });
  copyFileSync(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'), join(src, 'vgg_face_caffe', 'VGG_FACE.caffemodel'));
  writeFileSync(join(src, 'vgg_face_caffe', 'names.txt'), 'A.J._Buckley\n');
  const out = join(dir, 'vgg_face_caffe.tar.gz');
  await tar.c({ gzip: true, cwd: src, file: out }, ['vgg_face_caffe/names.txt', 'vgg_face_caffe/VGG_FACE.caffemodel']);
  return out;
}

async function serve(path: string, body: Buffer): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url !== path) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length, etag: '"x"' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('weights list: the sources in order with their checks and terms, and what the cache holds', async (t) => {
  const cache = tempDir(t);
  const empty = await runCli(['weights', 'list', '--cache-dir', cache]);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(
    empty.stdout,
    // line-width: regex
    /^sources, tried in this order:\n {2}1\. oxford-caffe {4}https:\/\/www\.robots\.ox\.ac\.uk\/~vgg\/software\/vgg_face\/src\/vgg_face_caffe\.tar\.gz\n {21}caffe in vgg_face_caffe\.tar\.gz, about 540 MB, md5 ee707ac6e890bc148cb155adeaad12be \(from bob\.bio\.face, whose VGG16_Oxford pins it as file_hash\)\n {21}terms: "These models can be used for non-commercial research purposes under Creative Commons Attribution License\."/,
  );
  assert.match(
    empty.stdout,
    /\n {2}\(no weights: "vggface weights fetch" downloads them, or place one of the files above there by hand\)\n$/,
  );

  // One copy fetched (and recorded), one placed by hand.
  const server = await serve('/vgg_face_weights.h5', TINY_H5);
  t.after(() => server.close());
  const deepface = WEIGHT_SOURCES.find((s) => s.name === 'deepface')!;
  await fetchWeights({
    cacheDir: cache,
    log: () => {},
    sources: [{ ...deepface, url: server.url, minBytes: 1000, approxBytes: 1000, weightsBytes: 1000, fullSize: false }],
  });
  copyFileSync(join(GOLDEN_DIR, 'vgg_face_dag.pth'), join(cache, 'weights', 'vgg_face_dag.pth'));
  const r = await runCli(['weights', 'list', '--cache-dir', cache, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout);
  assert.deepEqual(
    list.sources.map((s: { name: string }) => s.name),
    ['oxford-caffe', 'deepface', 'keras-vggface', 'oxford-pytorch', 'idiap-caffe'],
  );
  assert.equal(list.cache, join(cache, 'weights'));
  assert.deepEqual(
    list.cached.map((c: Record<string, unknown>) => ({ ...c, fetched: typeof c.fetched })),
    [
      {
        file: 'vgg_face_weights.h5',
        path: join(cache, 'weights', 'vgg_face_weights.h5'),
        bytes: TINY_H5.length,
        sha256: sha256(TINY_H5),
        source: 'deepface',
        fetched: 'string',
        format: 'keras-deepface',
        identity: TINY_IDENTITY,
      },
      {
        file: 'vgg_face_dag.pth',
        path: join(cache, 'weights', 'vgg_face_dag.pth'),
        bytes: readFileSync(join(GOLDEN_DIR, 'vgg_face_dag.pth')).length,
        sha256: sha256(readFileSync(join(GOLDEN_DIR, 'vgg_face_dag.pth'))),
        source: null,
        fetched: 'object',
        format: null,
        identity: null,
      },
    ],
  );
  const text = await runCli(['weights', 'list', '--cache-dir', cache]);
  assert.match(
    text.stdout,
    new RegExp(
      `\\n  vgg_face_weights\\.h5  ${TINY_H5.length.toLocaleString('en-US')} bytes  ` +
        `sha256 ${sha256(TINY_H5)}  from deepface \\(\\d{4}-\\d\\d-\\d\\d\\)  identity ${TINY_IDENTITY}\\n`,
    ),
  );
  assert.match(text.stdout, /\n {2}vgg_face_dag\.pth {2}[\d,]+ bytes {2}sha256 [0-9a-f]{64} {2}placed by hand\n$/);
});

test('weights verify: layout, topology, checksum and identity of weights, converted models and tarballs', async (t) => {
  const dir = tempDir(t);
  const cache = join(dir, 'cache');
  const h5 = await runCli([
    'weights',
    'verify',
    join(GOLDEN_DIR, 'vgg_face_weights.h5'),
    '--cache-dir',
    cache,
    '--json',
  ]);
  assert.equal(h5.code, 0, h5.stderr);
  const report = JSON.parse(h5.stdout);
  assert.deepEqual(
    {
      format: report.format,
      fullSize: report.fullSize,
      identity: report.identity,
      publishedAs: report.publishedAs,
      topology: report.topology,
      checksum: report.checksum,
    },
    {
      format: 'keras-deepface',
      fullSize: false,
      identity: TINY_IDENTITY,
      publishedAs: ['deepface (vgg_face_weights.h5)'],
      topology: { conv: [4, 4, 8, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16], fc6: 32, fc7: 32, fc8: 10, parameters: 42166 },
      checksum: { md5: md5(TINY_H5), sha256: sha256(TINY_H5), matches: [] },
    },
  );
  const t7 = await runCli(['weights', 'verify', join(GOLDEN_DIR, 'VGG_FACE.t7'), '--cache-dir', cache]);
  assert.equal(t7.code, 0, t7.stderr);
  assert.match(
    t7.stdout,
    // line-width: regex
    /\nformat: {4}torch7 \(.*\), float32, BGR\ntopology: {2}VGG-Face, a narrow copy \(conv 4,4,8,8,8,8,8,16,16,16,16,16,16; fc6 32, fc7 32, fc8 10\), 42,166 parameters\npublished: not a layout any built-in source publishes\n/,
  );
  assert.match(t7.stdout, new RegExp(`\\nidentity:  ${TINY_IDENTITY}\\n`));
  assert.match(t7.stdout, /\nchecksum: {2}matches no published checksum \(only the Oxford tarball has one\)\n$/);

  const onnx = join(dir, 'tiny.onnx');
  await convertWeightsToOnnx(join(GOLDEN_DIR, 'vgg_face.mat'), onnx, { preprocessing: 'caffe' });
  const m = await runCli(['weights', 'verify', onnx, '--cache-dir', cache, '--json']);
  assert.equal(m.code, 0, m.stderr);
  assert.deepEqual(
    [JSON.parse(m.stdout).format, JSON.parse(m.stdout).identity, JSON.parse(m.stdout).sourceFormat],
    ['onnx', TINY_IDENTITY, 'matconvnet'],
  );

  // A tarball that is not the published one: exit 1, with what it holds.
  const tarball = await tinyTarball(dir);
  const tgz = await runCli(['weights', 'verify', tarball, '--cache-dir', cache]);
  assert.equal(tgz.code, 1);
  assert.match(
    tgz.stdout,
    // line-width: regex
    /\nformat: {4}gzipped tarball, holds vgg_face_caffe\/VGG_FACE\.caffemodel\nverdict: {3}not the published Oxford tarball \(extract vgg_face_caffe\/VGG_FACE\.caffemodel and verify it for its identity\)\n/,
  );

  const junk = join(dir, 'junk.bin');
  writeFileSync(junk, 'not weights at all');
  const bad = await runCli(['weights', 'verify', junk, '--cache-dir', cache]);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /^vggface: .*junk\.bin: unrecognised weight format \(first bytes: 6e 6f 74 20 77 65 69 67\)/,
  );
});

test(
  'weights fetch: the source and its terms on stderr, ' + 'the reason it was refused, a cached copy, usage errors',
  async (t) => {
    const dir = tempDir(t);
    const cache = join(dir, 'cache');
    const server = await serve('/vgg_face_caffe.tar.gz', readFileSync(await tinyTarball(dir)));
    t.after(() => server.close());
    const r = await runCli(['weights', 'fetch', '--source', server.url, '--cache-dir', cache]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      `vggface: downloading the VGG-Face weights from url (${server.url}, about ` +
        '580 MB). Terms of use: those of whoever publishes it\n' +
        `vggface: ${server.url}: VGG_FACE.caffemodel in the archive is not the VGG-Face model (170412 ` +
        `bytes, a Caffe model; expected at least ${OFFICIAL_MIN_BYTES} bytes)\n`,
    );

    const unknown = await runCli(['weights', 'fetch', '--source', 'mirror9', '--cache-dir', cache]);
    assert.equal(unknown.code, 2);
    assert.equal(
      unknown.stderr,
      'vggface: unknown weight source "mirror9": expected one of oxford-caffe, deepface, ' +
        'keras-vggface, oxford-pytorch, idiap-caffe, or an http(s) URL\n',
    );

    // A copy of the official size placed by hand: found, nothing downloaded (VGGFACE_WEIGHTS_URL empty means unset).
    mkdirSync(join(cache, 'weights'), { recursive: true });
    const placed = join(cache, 'weights', 'VGG_FACE.caffemodel');
    writeFileSync(placed, '');
    truncateSync(placed, OFFICIAL_MIN_BYTES);
    const c = await runCli(['weights', 'fetch', '--cache-dir', cache, '--json'], { env: { VGGFACE_WEIGHTS_URL: '' } });
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(JSON.parse(c.stdout), {
      path: placed,
      source: 'oxford-caffe',
      url: WEIGHT_SOURCES[0].url,
      cached: true,
      skipped: [],
    });
    assert.equal(c.stderr, 'vggface: already in the cache (from oxford-caffe); --force downloads again\n');
  },
);
