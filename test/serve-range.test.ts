/**
 * `vggface serve --models DIR` answers HTTP Range requests on the files it serves (RFC 9110 section 14), over real
 * HTTP on generated model files: one range (`bytes=a-b`, `a-`, `-n`) gets 206 with Content-Range, the slice's
 * Content-Length and exactly its bytes; a range the file does not have gets 416 with a Content-Range of the size
 * alone; several ranges, other units and a malformed header get the whole file (200); If-Range with the file's ETag
 * keeps the range, any other validator gets the whole file; HEAD gets GET's headers and no body. A range at the
 * end of a 1 GiB file is answered without the server reading the file.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';
import { startServe } from './fixtures/serve.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(base: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`${method} ${path}: no answer within 20 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** A model file of `size` bytes that differ from their neighbours, so a slice off by one byte is seen. */
function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) % 251;
  return b;
}

/** The server's resident memory, in bytes (Linux). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `VmRSS of process ${pid}`);
  return Number(m[1]) * 1024;
}

const SIZE = 100_003;

test('--models DIR: a byte range gets 206 and its bytes, one past the end 416, others the whole file', async (t) => {
  const work = tempDir(t, 'vggface-serve-range-');
  const file = pattern(SIZE);
  writeFileSync(join(work, 'model.onnx'), file);
  writeFileSync(join(work, 'empty.onnx'), '');
  const server = await startServe(t, { cacheDir: tempDir(t), args: ['--models', work, '--auth', 'none'] });
  const path = '/models/model.onnx';

  const whole = await send(server.url, path);
  assert.equal(whole.status, 200);
  assert.equal(whole.headers['accept-ranges'], 'bytes', 'the answer says ranges may be asked for');
  assert.equal(whole.headers['content-length'], String(SIZE));
  assert.equal(whole.headers['content-range'], undefined);
  assert.ok(whole.body.equals(file), `Expected the ${SIZE} bytes of model.onnx but received ${whole.body.length}`);
  const etag = whole.headers.etag as string;
  assert.match(etag, /^"[0-9a-z]+-[0-9a-z]+-[0-9a-z]+"$/);

  // [Range, first byte, last byte]: each answered 206 with that slice.
  const parts: [string, number, number][] = [
    ['bytes=0-0', 0, 0],
    ['bytes=10-19', 10, 19],
    ['bytes=0-99', 0, 99],
    [`bytes=${SIZE - 1}-${SIZE - 1}`, SIZE - 1, SIZE - 1], // the last byte
    ['bytes=-1', SIZE - 1, SIZE - 1],
    ['bytes=-100', SIZE - 100, SIZE - 1],
    [`bytes=-${SIZE + 5}`, 0, SIZE - 1], // a suffix longer than the file is all of it
    ['bytes=99990-', 99990, SIZE - 1],
    ['bytes=99990-200000', 99990, SIZE - 1], // a last byte past the end is the end
    ['bytes=0-', 0, SIZE - 1],
    [' bytes = 5 - 6 ', 5, 6],
    ['BYTES=7-8', 7, 8],
  ];
  for (const [range, first, last] of parts) {
    const r = await send(server.url, path, { range });
    assert.equal(r.status, 206, `Expected 206 for Range ${range} but received ${r.status}`);
    assert.equal(r.headers['content-range'], `bytes ${first}-${last}/${SIZE}`, `Range ${range}: Content-Range`);
    assert.equal(r.headers['content-length'], String(last - first + 1), `Range ${range}: Content-Length`);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.equal(r.headers.etag, etag, `Range ${range}: the same ETag as the whole file`);
    assert.equal(r.headers['cross-origin-resource-policy'], 'same-origin');
    assert.ok(
      r.body.equals(file.subarray(first, last + 1)),
      `Range ${range}: Expected bytes ${first}-${last} of model.onnx but received ${r.body.length} other bytes`,
    );
  }
  const last = await send(server.url, path, { range: `bytes=${SIZE - 1}-` });
  assert.deepEqual([...last.body], [((SIZE - 1) * 31 + 7) % 251], 'the last byte, by value');

  // Past the end, an empty suffix, a last byte before the first: 416, saying how long the file is.
  for (const range of [
    `bytes=${SIZE}-`,
    `bytes=${SIZE}-${SIZE + 10}`,
    'bytes=200000-300000',
    'bytes=-0',
    'bytes=20-10',
  ]) {
    const r = await send(server.url, path, { range });
    assert.equal(r.status, 416, `Expected 416 for Range ${range} but received ${r.status}`);
    assert.equal(r.headers['content-range'], `bytes */${SIZE}`, `Range ${range}: Content-Range`);
    assert.deepEqual(JSON.parse(r.body.toString()), {
      error: {
        code: 'range_not_satisfiable',
        message: `Expected a byte range within the ${SIZE} bytes of model "model.onnx" but received Range "${range}"`,
      },
    });
  }
  const empty = await send(server.url, '/models/empty.onnx', { range: 'bytes=0-' });
  assert.equal(empty.status, 416, 'an empty file has no byte 0');
  assert.equal(empty.headers['content-range'], 'bytes */0');
  const emptyWhole = await send(server.url, '/models/empty.onnx');
  assert.equal(emptyWhole.status, 200);
  assert.equal(emptyWhole.headers['content-length'], '0');
  assert.equal(emptyWhole.body.length, 0);

  // Several ranges (no multipart/byteranges answer), other units, not a range: the whole file.
  for (const range of ['bytes=0-1,5-9', 'bytes=0-1, -5', 'items=0-5', 'bytes=abc', 'bytes=-', 'bytes 0-5']) {
    const r = await send(server.url, path, { range });
    assert.equal(r.status, 200, `Expected 200 (the whole file) for Range ${range} but received ${r.status}`);
    assert.equal(r.headers['content-length'], String(SIZE));
    assert.equal(r.headers['content-range'], undefined);
    assert.ok(r.body.equals(file), `Range ${range}: the whole file`);
  }

  // If-Range: the range only while the client's validator is this file's ETag (strongly compared).
  const kept = await send(server.url, path, { range: 'bytes=100-199', 'if-range': etag });
  assert.equal(kept.status, 206);
  assert.equal(kept.headers['content-range'], `bytes 100-199/${SIZE}`);
  assert.ok(kept.body.equals(file.subarray(100, 200)));
  for (const ifRange of ['"another"', `W/${etag}`, 'Tue, 01 Dec 2026 10:00:00 GMT']) {
    const r = await send(server.url, path, { range: 'bytes=100-199', 'if-range': ifRange });
    assert.equal(r.status, 200, `Expected the whole file (200) for If-Range ${ifRange} but received ${r.status}`);
    assert.equal(r.headers['content-length'], String(SIZE));
    assert.ok(r.body.equals(file), `If-Range ${ifRange}: the whole file`);
  }
  // A mismatched If-Range ignores the range altogether: even an unsatisfiable one gets the whole file.
  const stale = await send(server.url, path, { range: `bytes=${SIZE}-`, 'if-range': '"another"' });
  assert.equal(stale.status, 200);

  // If-None-Match comes first: a current copy gets 304 whatever range is asked.
  const current = await send(server.url, path, { range: 'bytes=0-9', 'if-none-match': etag });
  assert.equal(current.status, 304);
  assert.equal(current.body.length, 0);
  assert.equal(current.headers['content-range'], undefined);

  // HEAD: GET's headers, range included, and no body.
  const head = await send(server.url, path, {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['accept-ranges'], 'bytes');
  assert.equal(head.headers['content-length'], String(SIZE));
  assert.equal(head.body.length, 0);
  const headPart = await send(server.url, path, { range: 'bytes=-10' }, 'HEAD');
  assert.equal(headPart.status, 206);
  assert.equal(headPart.headers['content-range'], `bytes ${SIZE - 10}-${SIZE - 1}/${SIZE}`);
  assert.equal(headPart.headers['content-length'], '10');
  assert.equal(headPart.body.length, 0);
  const headPast = await send(server.url, path, { range: `bytes=${SIZE}-` }, 'HEAD');
  assert.equal(headPast.status, 416);
  assert.equal(headPast.headers['content-range'], `bytes */${SIZE}`);
  assert.equal(headPast.body.length, 0);

  // The detector is served the same way.
  const yunet = readFileSync(YUNET_MODEL);
  const detector = await send(server.url, '/detector.onnx', { range: 'bytes=-16' });
  assert.equal(detector.status, 206);
  assert.equal(detector.headers['content-range'], `bytes ${yunet.length - 16}-${yunet.length - 1}/${yunet.length}`);
  assert.ok(detector.body.equals(yunet.subarray(yunet.length - 16)));
});

test('--models DIR: ranges of a 1 GiB model are streamed from the file, which is never read into memory', async (t) => {
  const work = tempDir(t, 'vggface-serve-range-');
  const GIB = 2 ** 30;
  // Sparse: a 1 GiB file that takes no disk, with known bytes at its middle and its end.
  const tail = pattern(4096);
  const middle = Buffer.from('the middle of the model');
  const fh = await open(join(work, 'large.onnx'), 'w');
  await fh.truncate(GIB);
  await fh.write(middle, 0, middle.length, GIB / 2);
  await fh.write(tail, 0, tail.length, GIB - tail.length);
  await fh.close();
  const server = await startServe(t, { cacheDir: tempDir(t), args: ['--models', work, '--auth', 'none'] });
  const path = '/models/large.onnx';
  const before = rssOf(server.child.pid!);

  const end = await send(server.url, path, { range: 'bytes=-4096' });
  assert.equal(end.status, 206);
  assert.equal(end.headers['content-range'], `bytes ${GIB - 4096}-${GIB - 1}/${GIB}`);
  assert.equal(end.headers['content-length'], '4096');
  assert.ok(end.body.equals(tail), 'the last 4096 bytes');
  const mid = await send(server.url, path, { range: `bytes=${GIB / 2}-${GIB / 2 + middle.length - 1}` });
  assert.equal(mid.status, 206);
  assert.equal(mid.body.toString(), 'the middle of the model');
  const gap = await send(server.url, path, { range: `bytes=${GIB / 4}-${GIB / 4 + 7}` });
  assert.deepEqual([...gap.body], [0, 0, 0, 0, 0, 0, 0, 0], 'a hole of the sparse file reads as zeros');
  const head = await send(server.url, path, {}, 'HEAD');
  assert.equal(head.headers['content-length'], String(GIB));
  assert.equal(head.headers['accept-ranges'], 'bytes');

  // Reading the file whole for a range would have grown the server by 1 GiB; streaming the slice, by little.
  const grown = rssOf(server.child.pid!) - before;
  assert.ok(grown < 64 * 2 ** 20, `Expected the server to grow by under 64 MiB but it grew by ${grown} bytes`);
});
