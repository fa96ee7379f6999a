/**
 * Issue 11: the weights arrive from the first of several sources that gives a checked file. Local HTTP servers play
 * the sources (404, wrong checksum, DNS failure, stalls, cut transfers, a full disk); every outcome is asserted
 * exactly, and nothing partial is left in the cache.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import * as tar from 'tar';
import type { VggFaceError } from '../src/errors.js';
import {
  fetchWeights,
  OFFICIAL_MIN_BYTES,
  readRecords,
  WEIGHT_SOURCES,
  type WeightSource,
} from '../src/weights/official.js';
import { GOLDEN_DIR, tempDir } from './helpers.js';

const TINY_CAFFE = readFileSync(join(GOLDEN_DIR, 'VGG_FACE.caffemodel'));
const TINY_H5 = readFileSync(join(GOLDEN_DIR, 'vgg_face_weights.h5'));
const TINY_PTH = readFileSync(join(GOLDEN_DIR, 'vgg_face_dag.pth'));
/** The tiny network's identity: the same for every layout (weights-identity.test.ts). */
const TINY_IDENTITY = '7295bdd4c5cf082ca68a1dc0e735046156d8d6ca8b12ad1cc20cb43b53782fb2';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** vgg_face_caffe.tar.gz as the release lays it out, holding the given caffemodel bytes. */
async function tarball(dir: string, caffemodel: Buffer, extra = ''): Promise<Buffer> {
  const src = join(dir, `src-${Math.random().toString(36).slice(2)}`);
  mkdirSync(join(src, 'vgg_face_caffe'), { recursive: true });
  writeFileSync(join(src, 'vgg_face_caffe', 'names.txt'), `A.J._Buckley\n${extra}`);
  writeFileSync(join(src, 'vgg_face_caffe', 'VGG_FACE.caffemodel'), caffemodel);
  const out = join(src, 'out.tar.gz');
  await tar.c({ gzip: true, cwd: src, file: out }, ['vgg_face_caffe/names.txt', 'vgg_face_caffe/VGG_FACE.caffemodel']);
  return readFileSync(out);
}

type Route =
  | { kind: 'file'; body: Buffer; etag?: string; cutAfter?: number }
  | { kind: 'status'; status: number }
  | { kind: 'silent' } // accepts the request, never answers
  | { kind: 'stall-body'; body: Buffer; after: number }; // headers and `after` bytes, then nothing

interface Routes {
  readonly base: string;
  readonly requests: { path: string; headers: IncomingHttpHeaders }[];
  close(): Promise<void>;
}

/**
 * One local server playing several sources, one path each. A `cutAfter` file drops the connection once, after that many
 * bytes.
 */
async function serveRoutes(routes: Record<string, Route>): Promise<Routes> {
  const requests: Routes['requests'] = [];
  const open: ServerResponse[] = [];
  const server = createServer((req, res) => {
    requests.push({ path: req.url ?? '', headers: req.headers });
    const route = routes[req.url ?? ''];
    if (!route) return void res.writeHead(404).end('not found');
    if (route.kind === 'status') return void res.writeHead(route.status).end();
    if (route.kind === 'silent') return void open.push(res);
    if (route.kind === 'stall-body') {
      res.writeHead(200, { 'content-length': route.body.length, etag: '"s"' });
      res.write(route.body.subarray(0, route.after));
      open.push(res);
      return;
    }
    const etag = route.etag ?? '"v1"';
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && req.headers['if-range'] === etag) start = Number(range[1]);
    const headers: Record<string, string | number> = {
      etag,
      'content-length': route.body.length - start,
      'accept-ranges': 'bytes',
    };
    if (start > 0) headers['content-range'] = `bytes ${start}-${route.body.length - 1}/${route.body.length}`;
    res.writeHead(start > 0 ? 206 : 200, headers);
    const slice = route.body.subarray(start);
    if (route.cutAfter !== undefined) {
      const n = route.cutAfter;
      route.cutAfter = undefined;
      res.write(slice.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const r of open) r.socket?.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A test source: the tiny network, small sizes, the layout of `like` (a built-in source). */
function source(
  name: string,
  url: string,
  like: 'oxford-caffe' | 'deepface' | 'oxford-pytorch',
  extra: Partial<WeightSource> = {},
): WeightSource {
  const base = WEIGHT_SOURCES.find((s) => s.name === like)!;
  return { ...base, name, url, approxBytes: 1000, weightsBytes: 1000, minBytes: 1000, fullSize: false, ...extra };
}

function collect(): { lines: string[]; log: (m: string) => void } {
  const lines: string[] = [];
  return { lines, log: (m) => lines.push(m) };
}

const weightsDirOf = (cacheDir: string) => join(cacheDir, 'weights');

test(
  'sources are tried in order: a 404, then a wrong checksum, then the right ' +
    'tarball; the skips are said, nothing partial stays',
  async (t) => {
    const dir = tempDir(t);
    const good = await tarball(dir, TINY_CAFFE);
    const other = await tarball(dir, TINY_CAFFE, 'another file\n');
    const server = await serveRoutes({
      '/b/vgg_face_caffe.tar.gz': { kind: 'file', body: other },
      '/c/vgg_face_caffe.tar.gz': { kind: 'file', body: good },
    });
    t.after(() => server.close());
    const cacheDir = join(dir, 'cache');
    const [a, b, c] = ['a', 'b', 'c'].map((n) => `${server.base}/${n}/vgg_face_caffe.tar.gz`);
    const sources = [
      source('first', a, 'oxford-caffe'),
      source('second', b, 'oxford-caffe', { md5: md5(good), checksumFrom: 'the test' }),
      source('third', c, 'oxford-caffe', { md5: md5(good), checksumFrom: 'the test' }),
    ];
    const { lines, log } = collect();
    const outcome = await fetchWeights({ cacheDir, sources, log });
    const reasons = [
      `cannot download ${a}: HTTP 404 Not Found`,
      `${b}: checksum mismatch: md5 ${md5(other)}, the published file ` +
        `has ${md5(good)} (the test); the download was removed`,
    ];
    assert.deepEqual(outcome.skipped, [
      { source: 'first', reason: reasons[0] },
      { source: 'second', reason: reasons[1] },
    ]);
    assert.equal(outcome.source.name, 'third');
    assert.equal(outcome.cached, false);
    assert.equal(outcome.path, join(weightsDirOf(cacheDir), 'VGG_FACE.caffemodel'));
    assert.deepEqual(readFileSync(outcome.path), TINY_CAFFE);
    assert.equal(outcome.check?.identity, TINY_IDENTITY);
    assert.equal(outcome.md5, md5(good));
    assert.deepEqual(
      readdirSync(weightsDirOf(cacheDir)),
      ['VGG_FACE.caffemodel'],
      'no tarball, part file or staging folder left',
    );
    const terms = WEIGHT_SOURCES[0].terms;
    assert.deepEqual(lines, [
      `downloading the VGG-Face weights from first (${a}, about 1 kB). Terms of use: ${terms}`,
      `first skipped: ${reasons[0]}; trying second`,
      `downloading the VGG-Face weights from second (${b}, about 1 kB). Terms of use: ${terms}`,
      `second skipped: ${reasons[1]}; trying third`,
      `downloading the VGG-Face weights from third (${c}, about 1 kB). Terms of use: ${terms}`,
      `weights from third checked (caffe, identity ${TINY_IDENTITY}): ${outcome.path}`,
    ]);
    const [record] = await readRecords(cacheDir);
    assert.deepEqual(
      {
        file: record.file,
        source: record.source,
        url: record.url,
        md5: record.downloadMd5,
        sha256: record.downloadSha256,
        fileSha256: record.fileSha256,
        format: record.format,
        identity: record.identity,
      },
      {
        file: 'VGG_FACE.caffemodel',
        source: 'third',
        url: c,
        md5: md5(good),
        sha256: sha256(good),
        fileSha256: sha256(TINY_CAFFE),
        format: 'caffe',
        identity: TINY_IDENTITY,
      },
    );
    // The next fetch finds it in the cache and downloads nothing.
    const again = await fetchWeights({ cacheDir, sources, log });
    assert.deepEqual([again.cached, again.source.name, again.path], [true, 'first', outcome.path]);
    assert.equal(server.requests.length, 3);
  },
);

test(
  'bare weight files: a wrong sha256 and content that is not the ' +
    'expected layout are skipped; a PyTorch file is taken',
  async (t) => {
    const dir = tempDir(t);
    const server = await serveRoutes({
      '/h5': { kind: 'file', body: TINY_H5 },
      '/text': { kind: 'file', body: Buffer.from('<html>rate limited</html>'.repeat(100)) },
      '/pth': { kind: 'file', body: TINY_PTH },
    });
    t.after(() => server.close());
    const cacheDir = join(dir, 'cache');
    const wrong = 'f'.repeat(64);
    const { log } = collect();
    const outcome = await fetchWeights({
      cacheDir,
      log,
      sources: [
        source('h5', `${server.base}/h5`, 'deepface', { sha256: wrong, checksumFrom: 'the test' }),
        source('text', `${server.base}/text`, 'deepface'),
        source('pth', `${server.base}/pth`, 'oxford-pytorch'),
      ],
    });
    assert.deepEqual(outcome.skipped, [
      {
        source: 'h5',
        reason:
          `${server.base}/h5: checksum mismatch: sha256 ${sha256(TINY_H5)}, the published ` +
          `file has ${wrong} (the test); the download was removed`,
      },
      {
        source: 'text',
        reason:
          `${server.base}/text: the download is not usable weights: unrecognised weight format (first bytes: 3c ` +
          '68 74 6d 6c 3e 72 61); expected one of: onnx, caffe, torch7, matconvnet, safetensors, ' +
          'keras-deepface, keras-vggface, hdf5-article, pytorch. Use --format to force one.',
      },
    ]);
    assert.equal(outcome.source.name, 'pth');
    assert.equal(outcome.check?.format, 'pytorch');
    assert.equal(outcome.check?.identity, TINY_IDENTITY);
    assert.deepEqual(readdirSync(weightsDirOf(cacheDir)), ['vgg_face_dag.pth']);
    assert.deepEqual(readFileSync(join(weightsDirOf(cacheDir), 'vgg_face_dag.pth')), TINY_PTH);
  },
);

test('a narrow network is not the published one: refused where the published widths are required', async (t) => {
  const dir = tempDir(t);
  const server = await serveRoutes({ '/h5': { kind: 'file', body: TINY_H5 } });
  t.after(() => server.close());
  const cacheDir = join(dir, 'cache');
  const err: VggFaceError = await fetchWeights({
    cacheDir,
    log: () => {},
    sources: [source('h5', `${server.base}/h5`, 'deepface', { fullSize: true })],
  }).then(
    () => assert.fail('accepted'),
    (e: VggFaceError) => e,
  );
  assert.equal(err.code, 'E_TOPOLOGY');
  assert.equal(
    err.message,
    `${server.base}/h5: the download has the VGG-Face topology but not its widths (conv ` +
      '4,4,8,8,8,8,8,16,16,16,16,16,16, fc6 32, fc7 32, fc8 10): not the published network',
  );
  assert.deepEqual(readdirSync(weightsDirOf(cacheDir)), []);
});

test(
  'a DNS failure is named and the next source is tried; a ' + 'single unresolvable source fails with the offline hint',
  async (t) => {
    const dir = tempDir(t);
    const server = await serveRoutes({ '/ok': { kind: 'file', body: TINY_H5 } });
    t.after(() => server.close());
    const cacheDir = join(dir, 'cache');
    const bad = 'http://nonexistent.invalid/vgg_face_weights.h5';
    const outcome = await fetchWeights({
      cacheDir,
      log: () => {},
      sources: [source('nowhere', bad, 'deepface'), source('ok', `${server.base}/ok`, 'deepface')],
    });
    assert.equal(outcome.source.name, 'ok');
    assert.equal(outcome.skipped.length, 1);
    assert.match(
      outcome.skipped[0].reason,
      // line-width: regex
      /^cannot download http:\/\/nonexistent\.invalid\/vgg_face_weights\.h5: (ENOTFOUND|EAI_AGAIN|EAI_NONAME|EAI_FAIL) \(the host name nonexistent\.invalid does not resolve: no DNS answer for it, or no network\)$/,
    );
    assert.deepEqual(readdirSync(weightsDirOf(cacheDir)), ['vgg_face_weights.h5']);

    const alone = join(dir, 'alone');
    await assert.rejects(
      fetchWeights({ cacheDir: alone, log: () => {}, sources: [source('nowhere', bad, 'deepface')] }),
      (e: VggFaceError) => {
        assert.equal(e.code, 'E_NETWORK');
        assert.match(
          e.message,
          // line-width: regex
          /^cannot download http:\/\/nonexistent\.invalid\/vgg_face_weights\.h5: \w+ \(the host name nonexistent\.invalid does not resolve: .*\)\. To use weights you already have, pass them with --weights FILE/,
        );
        return true;
      },
    );
    assert.deepEqual(readdirSync(weightsDirOf(alone)), [], 'nothing left');
  },
);

test(
  'a server that stalls is given up after the idle timeout, before the ' +
    'answer or in the body; the next source is used',
  async (t) => {
    const dir = tempDir(t);
    const server = await serveRoutes({
      '/silent': { kind: 'silent' },
      '/slow': { kind: 'stall-body', body: TINY_H5, after: 1000 },
      '/ok': { kind: 'file', body: TINY_H5 },
    });
    t.after(() => server.close());
    const cacheDir = join(dir, 'cache');
    const started = Date.now();
    const outcome = await fetchWeights({
      cacheDir,
      log: () => {},
      idleTimeoutMs: 300,
      sources: [
        source('silent', `${server.base}/silent`, 'deepface'),
        source('slow', `${server.base}/slow`, 'deepface'),
        source('ok', `${server.base}/ok`, 'deepface'),
      ],
    });
    const elapsed = Date.now() - started;
    assert.deepEqual(outcome.skipped, [
      { source: 'silent', reason: `cannot download ${server.base}/silent: no data for 0.3 s` },
      {
        source: 'slow',
        reason: `cannot download ${server.base}/slow: no data for 0.3 s. Run the same command again to resume`,
      },
    ]);
    assert.equal(outcome.source.name, 'ok');
    assert.ok(elapsed < 5000, `bounded: ${elapsed} ms`);
    // The stalled transfer's part was kept while other sources were tried, and removed once one succeeded.
    assert.deepEqual(readdirSync(weightsDirOf(cacheDir)), ['vgg_face_weights.h5']);
  },
);

test('a transfer cut short is resumed by the next fetch with a Range request, and gives the same file', async (t) => {
  const dir = tempDir(t);
  const body = await tarball(dir, TINY_CAFFE);
  const half = Math.floor(body.length / 2);
  const route: Route = { kind: 'file', body, etag: '"t1"', cutAfter: half };
  const server = await serveRoutes({ '/cut/vgg_face_caffe.tar.gz': route });
  t.after(() => server.close());
  const cacheDir = join(dir, 'cache');
  const url = `${server.base}/cut/vgg_face_caffe.tar.gz`;
  const sources = [
    source('cut', url, 'oxford-caffe', { md5: md5(body), checksumFrom: 'the test' }),
    source('missing', `${server.base}/missing.h5`, 'deepface'),
  ];
  const first = collect();
  await assert.rejects(fetchWeights({ cacheDir, sources, log: first.log }), (e: VggFaceError) => {
    assert.equal(e.code, 'E_NETWORK');
    assert.match(
      e.message,
      new RegExp(
        `^no source gave a checked copy of the VGG-Face weights:\\n  cut: cannot download ${url}: ` +
          '.*Run the same command again to resume\\n  missing: cannot ' +
          `download ${server.base}/missing.h5: HTTP 404 Not Found\\nTo use weights you already have`,
      ),
    );
    return true;
  });
  const part = join(weightsDirOf(cacheDir), 'vgg_face_caffe.tar.gz.part');
  const partial = statSync(part).size;
  assert.ok(partial > 0 && partial < body.length, `partial file of ${partial} bytes`);
  assert.deepEqual(readdirSync(weightsDirOf(cacheDir)).sort(), [
    'vgg_face_caffe.tar.gz.part',
    'vgg_face_caffe.tar.gz.part.json',
  ]);

  const second = collect();
  const outcome = await fetchWeights({ cacheDir, sources, log: second.log });
  assert.equal(outcome.source.name, 'cut');
  const resumed = server.requests.filter((r) => r.path === '/cut/vgg_face_caffe.tar.gz')[1];
  assert.equal(resumed.headers.range, `bytes=${partial}-`);
  assert.equal(resumed.headers['if-range'], '"t1"');
  assert.match(
    second.lines[0],
    new RegExp(`^downloading the VGG-Face weights from cut \\(${url}, about 1 kB, resuming after \\d+ kB\\)`),
  );
  assert.deepEqual(readFileSync(outcome.path), TINY_CAFFE);
  assert.equal(outcome.md5, md5(body), 'the spliced file is the published one');
  assert.deepEqual(readdirSync(weightsDirOf(cacheDir)), ['VGG_FACE.caffemodel']);
});

test('not enough free space: the source is skipped before anything is downloaded', async (t) => {
  const dir = tempDir(t);
  const server = await serveRoutes({ '/ok': { kind: 'file', body: TINY_H5 } });
  t.after(() => server.close());
  const cacheDir = join(dir, 'cache');
  const outcome = await fetchWeights({
    cacheDir,
    log: () => {},
    sources: [
      source('huge', `${server.base}/huge`, 'oxford-caffe', { approxBytes: 4e15, weightsBytes: 3e15 }),
      source('ok', `${server.base}/ok`, 'deepface'),
    ],
  });
  assert.equal(outcome.source.name, 'ok');
  assert.match(
    outcome.skipped[0].reason,
    new RegExp(
      `^not enough free space in ${weightsDirOf(cacheDir).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: huge needs ` +
        'about 10000000\\.0 GB \\(the download, the extracted model and the converted ONNX model\\), [\\d.]+ [kMG]?B ' +
        'is free; free some space or set VGGFACE_CACHE to a folder on a larger disk$',
    ),
  );
  assert.deepEqual(
    server.requests.map((r) => r.path),
    ['/ok'],
    'nothing was requested from the source that does not fit',
  );
});

/** A tmpfs of 1 MiB at `dir` when this process may mount one (root on Linux), else undefined. */
function smallTmpfs(dir: string): (() => void) | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return undefined;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  return () => execFileSync('umount', [dir], { stdio: 'ignore' });
}

test(
  'a full disk stops the fetch with a clear message, ' + 'removes the partial download and tries no other source',
  async (t) => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const server = await serveRoutes({ '/big': { kind: 'file', body: big }, '/ok': { kind: 'file', body: TINY_H5 } });
    t.after(() => server.close());
    // Not under tempDir: the tmpfs is unmounted before its mount point is removed, in one hook.
    const cacheDir = mkdtempSync(join(tmpdir(), 'vggface-full-disk-'));
    const unmount = smallTmpfs(cacheDir);
    t.after(() => {
      unmount?.();
      rmSync(cacheDir, { recursive: true, force: true });
    });
    // Without a tmpfs, the disk is full after 64 kB: the part file's writes fail with ENOSPC.
    let written = 0;
    const openOutput = unmount
      ? undefined
      : () =>
          new Writable({
            write(chunk: Buffer, _enc, cb) {
              written += chunk.length;
              if (written > 64 * 1024)
                cb(
                  Object.assign(new Error('ENOSPC: no space left on device, write'), {
                    code: 'ENOSPC',
                    syscall: 'write',
                  }),
                );
              else cb();
            },
          });
    await assert.rejects(
      fetchWeights({
        cacheDir,
        log: () => {},
        openOutput,
        sources: [source('big', `${server.base}/big`, 'deepface'), source('ok', `${server.base}/ok`, 'deepface')],
      }),
      (e: VggFaceError) => {
        assert.equal(e.code, 'E_IO');
        const part = join(weightsDirOf(cacheDir), 'vgg_face_weights.h5.unverified.part');
        assert.match(
          e.message,
          new RegExp(
            `^${part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no space left on device while ` +
              `downloading ${server.base}/big \\(after \\d+ bytes\\); the partial download was removed$`,
          ),
        );
        return true;
      },
    );
    assert.deepEqual(readdirSync(weightsDirOf(cacheDir)), [], 'no partial file');
    assert.deepEqual(
      server.requests.map((r) => r.path),
      ['/big'],
      'the next source is not tried on a full disk',
    );
    t.diagnostic(unmount ? 'full disk: a 1 MiB tmpfs' : 'full disk: an injected ENOSPC (no tmpfs could be mounted)');
  },
);

test(
  'VGGFACE_WEIGHTS_URL set but empty means unset: the built-in sources ' +
    '(here found in the cache); set, it replaces them',
  async (t) => {
    const dir = tempDir(t);
    const cacheDir = join(dir, 'cache');
    mkdirSync(weightsDirOf(cacheDir), { recursive: true });
    const placed = join(weightsDirOf(cacheDir), 'VGG_FACE.caffemodel');
    writeFileSync(placed, '');
    truncateSync(placed, OFFICIAL_MIN_BYTES); // sparse: a copy placed by hand, of the official size
    const saved = process.env.VGGFACE_WEIGHTS_URL;
    t.after(() =>
      saved === undefined ? delete process.env.VGGFACE_WEIGHTS_URL : (process.env.VGGFACE_WEIGHTS_URL = saved),
    );
    process.env.VGGFACE_WEIGHTS_URL = '';
    const found = await fetchWeights({ cacheDir, log: () => assert.fail('no message for a cached copy') });
    assert.deepEqual([found.cached, found.source.name, found.path], [true, 'oxford-caffe', placed]);

    const server = await serveRoutes({ '/mirror/vgg_face_weights.h5': { kind: 'file', body: TINY_H5 } });
    t.after(() => server.close());
    process.env.VGGFACE_WEIGHTS_URL = `${server.base}/mirror/vgg_face_weights.h5`;
    const fetched = await fetchWeights({ cacheDir, minBytes: 1000, log: () => {} });
    assert.deepEqual([fetched.cached, fetched.source.name, fetched.check?.format], [false, 'url', 'keras-deepface']);
    assert.equal(fetched.path, join(weightsDirOf(cacheDir), 'vgg_face_weights.h5'));
    assert.ok(existsSync(placed), 'the other copy is left alone');
  },
);
