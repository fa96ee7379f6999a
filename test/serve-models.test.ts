/**
 * `vggface serve --models DIR` over real HTTP: the converted models in DIR are served read-only at
 * /models/NAME.onnx with ETag / If-None-Match and Content-Length, and nothing else is: no listing, no other file
 * types, no path out of DIR (`..`, encoded or not, backslashes, symbolic links leaving DIR), nothing but regular files
 * (a FIFO is refused at once, not waited on). Every page and script the server sends is cross-origin isolated
 * (COOP/COEP), so onnxruntime-web gets WebAssembly threads, and /local's CSP lets it compile WebAssembly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { convertModel } from '../src/onnx/convert-model.js';
import { ROOT, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import { startServe } from './fixtures/serve.js';

const SECRET = 'SECRET-OUTSIDE-THE-MODELS-FOLDER';

/** A GET with the path sent exactly as given (fetch and URL would resolve `..` and re-encode it first). */
function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    // A route that waited on a FIFO would hang: fail instead.
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${path}: no answer within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

let work: string;
let models: string;
let tiny: Buffer;

before(async () => {
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-browser.mjs'), '--quiet'], {
    encoding: 'utf8',
  });
  assert.equal(built.status, 0, `build-browser: ${built.stderr}`);
});

test(
  '--models DIR: converted models read-only with ETag, 304 and Content-Length; no ' +
    'listing, nothing outside DIR, only regular .onnx files',
  async (t) => {
    work = tempDir(t, 'vggface-serve-models-');
    models = join(work, 'models');
    mkdirSync(models);
    await convertModel(TINY_CAFFEMODEL, join(models, 'tiny.onnx'), { preprocessing: 'caffe' });
    tiny = readFileSync(join(models, 'tiny.onnx'));
    writeFileSync(join(work, 'secret.onnx'), SECRET);
    writeFileSync(join(models, 'notes.txt'), SECRET);
    writeFileSync(join(models, '.hidden.onnx'), SECRET);
    mkdirSync(join(models, 'folder.onnx'));
    mkdirSync(join(models, 'sub'));
    writeFileSync(join(models, 'sub', 'inner.onnx'), SECRET);
    symlinkSync(join(work, 'secret.onnx'), join(models, 'leak.onnx'));
    symlinkSync('../secret.onnx', join(models, 'up.onnx'));
    symlinkSync('/etc/passwd', join(models, 'passwd.onnx'));
    symlinkSync('tiny.onnx', join(models, 'alias.onnx'));
    const fifo = spawnSync('mkfifo', [join(models, 'fifo.onnx')]);
    assert.equal(fifo.status, 0, `mkfifo: ${fifo.stderr}`);

    const server = await startServe(t, { cacheDir: tempDir(t), args: ['--models', models, '--auth', 'none'] });
    const url = (p: string) => `${server.url}${p}`;

    // The model: every byte, its length, a validator, revalidation rather than caching blindly.
    const res = await fetch(url('/models/tiny.onnx'));
    assert.equal(res.status, 200);
    const body = Buffer.from(await res.arrayBuffer());
    assert.ok(
      body.equals(tiny),
      `Expected the ${tiny.length} bytes of tiny.onnx for GET ` +
        `/models/tiny.onnx but received ${body.length} other bytes`,
    );
    assert.equal(res.headers.get('content-length'), String(tiny.length));
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('accept-ranges'), 'bytes', 'ranges may be asked for (test/serve-range.test.ts)');
    const etag = res.headers.get('etag')!;
    assert.match(etag, /^"[0-9a-z]+-[0-9a-z]+-[0-9a-z]+"$/, 'a strong ETag');

    // Conditional requests: 304 with no body for a matching tag (in a list, weak, or *), 200 for another.
    for (const given of [etag, `"other", ${etag}`, `W/${etag}`, '*']) {
      const r = await rawGet(server.url, '/models/tiny.onnx', { 'if-none-match': given });
      assert.equal(r.status, 304, `Expected 304 for If-None-Match ${given} but received ${r.status}`);
      assert.equal(r.body.length, 0);
      assert.equal(r.headers.etag, etag);
    }
    assert.equal((await rawGet(server.url, '/models/tiny.onnx', { 'if-none-match': '"stale"' })).status, 200);
    const head = await fetch(url('/models/tiny.onnx'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(tiny.length));
    assert.equal(head.headers.get('etag'), etag);
    assert.equal((await head.arrayBuffer()).byteLength, 0);

    // A symbolic link to a model inside DIR is that model.
    const alias = await fetch(url('/models/alias.onnx'));
    assert.equal(alias.status, 200);
    assert.ok(Buffer.from(await alias.arrayBuffer()).equals(tiny));

    // A changed model gets a new ETag: the old one no longer matches.
    const later = new Date(Date.now() + 5000);
    utimesSync(join(models, 'tiny.onnx'), later, later);
    const changed = await rawGet(server.url, '/models/tiny.onnx', { 'if-none-match': etag });
    assert.equal(changed.status, 200, 'a model touched since gets a new ETag');
    assert.notEqual(changed.headers.etag, etag);

    // Refused, each with 404 (or 400 for a malformed URL) and never the bytes of anything outside DIR.
    const refused = [
      '/models/', // no listing
      '/models',
      '/models/notes.txt', // not .onnx
      '/models/.hidden.onnx',
      '/models/folder.onnx', // a folder
      '/models/fifo.onnx', // a FIFO: refused at once (an open that waited for a writer would hang here)
      '/models/leak.onnx', // links leaving DIR
      '/models/up.onnx',
      '/models/passwd.onnx',
      '/models/sub/inner.onnx', // one segment only
      '/models/sub%2finner.onnx',
      '/models/../secret.onnx', // traversal as sent, not normalised by a client
      '/models/..%2fsecret.onnx',
      '/models/%2e%2e%2fsecret.onnx',
      '/models/%2E%2E%2Fsecret.onnx',
      '/models/%2e%2e/secret.onnx',
      '/models/%2e%2e',
      '/models/..%5csecret.onnx',
      '/models/%2e%2e%5csecret.onnx',
      '/models/%00tiny.onnx',
      '/models/tiny.onnx%00.onnx',
      '/models/%252e%252e%252fsecret.onnx', // double-encoded
      '/models/nope.onnx',
      '/vggface/browser/', // nor is the library's folder listed, or left
      '/vggface/browser/../../package.json',
      '/vggface/browser/..%2f..%2fpackage.json',
      '/vggface/browser/..%2fsrc%2fbrowser%2findex.js',
    ];
    for (const path of refused) {
      const r = await rawGet(server.url, path);
      assert.ok(r.status === 404 || r.status === 400, `Expected 404 for GET ${path} but received ${r.status}`);
      assert.ok(!r.body.includes(SECRET) && !r.body.includes('root:'), `GET ${path}: answered with a file's content`);
      assert.match(r.headers['content-type'] as string, /^application\/json/, `GET ${path}: an API error body`);
    }
    const named = await rawGet(server.url, '/models/nope.onnx');
    assert.deepEqual(JSON.parse(named.body.toString()), {
      error: { code: 'not_found', message: 'no model "nope.onnx"' },
    });
    // Read-only: no method but GET and HEAD.
    for (const method of ['PUT', 'POST', 'DELETE']) {
      const r = await fetch(url('/models/tiny.onnx'), { method, body: method === 'DELETE' ? undefined : 'x' });
      assert.equal(r.status, 404, `Expected 404 for ${method} /models/tiny.onnx but received ${r.status}`);
    }
    assert.ok(readFileSync(join(models, 'tiny.onnx')).equals(tiny), 'the model is unchanged');

    // A page of another name resolving to this server (DNS rebinding) reads no model, as it reads no API route.
    const rebound = await rawGet(server.url, '/models/tiny.onnx', { host: 'attacker.example' });
    assert.equal(rebound.status, 421, `Expected 421 for a foreign Host header but received ${rebound.status}`);
    assert.ok(!rebound.body.includes(tiny.subarray(0, 64)));

    // The server's own YuNet, for the page's face detection.
    const detector = await fetch(url('/detector.onnx'));
    assert.equal(detector.status, 200);
    assert.ok(Buffer.from(await detector.arrayBuffer()).equals(readFileSync(YUNET_MODEL)));
  },
);

test(
  'every page and script is cross-origin isolated; /local ' + 'and the library may compile WebAssembly, / may not',
  async (t) => {
    const dir = tempDir(t, 'vggface-serve-models-');
    await convertModel(TINY_CAFFEMODEL, join(dir, 'tiny.onnx'), { preprocessing: 'caffe' });
    const server = await startServe(t, { cacheDir: tempDir(t), args: ['--models', dir, '--auth', 'none'] });
    const paths: Record<string, RegExp> = {
      '/': /^text\/html/,
      '/app.js': /^text\/javascript/,
      '/style.css': /^text\/css/,
      '/favicon.svg': /^image\/svg\+xml/,
      '/local': /^text\/html/,
      '/local.js': /^text\/javascript/,
      '/vggface/browser/vggface.js': /^text\/javascript/,
      '/vggface/browser/vggface-worker.js': /^text\/javascript/,
      '/vggface/browser/ort.wasm.min.mjs': /^text\/javascript/,
      '/vggface/browser/ort-wasm-simd-threaded.mjs': /^text\/javascript/,
      '/vggface/browser/ort-wasm-simd-threaded.wasm': /^application\/wasm$/,
      '/detector.onnx': /^application\/octet-stream$/,
      '/models/tiny.onnx': /^application\/octet-stream$/,
    };
    for (const [path, type] of Object.entries(paths)) {
      const r = await fetch(`${server.url}${path}`);
      await r.arrayBuffer();
      assert.equal(r.status, 200, `Expected 200 for GET ${path} but received ${r.status}`);
      assert.match(r.headers.get('content-type') ?? '', type, `${path}: content type`);
      assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin', `${path}: COOP`);
      assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp', `${path}: COEP`);
      assert.equal(r.headers.get('cross-origin-resource-policy'), 'same-origin', `${path}: CORP`);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${path}: nosniff`);
    }
    const csp = async (path: string) =>
      (await fetch(`${server.url}${path}`)).headers.get('content-security-policy') ?? '';
    for (const path of ['/local', '/local.js', '/vggface/browser/vggface.js', '/vggface/browser/vggface-worker.js']) {
      const policy = await csp(path);
      assert.match(policy, /(^|; )script-src 'self' 'wasm-unsafe-eval'(;|$)/, `${path}: CSP ${policy}`);
      assert.match(policy, /(^|; )default-src 'self'(;|$)/, `${path}: CSP ${policy}`);
    }
    assert.doesNotMatch(await csp('/'), /wasm-unsafe-eval|script-src/, "the server's page runs no WebAssembly");
    const local = await (await fetch(`${server.url}/local`)).text();
    assert.equal(local, readFileSync(join(ROOT, 'web', 'local.html'), 'utf8'));
    assert.match(local, /photos are never uploaded/);
    assert.ok(!/(src|href)="(https?:)?\/\//.test(local), 'the page loads nothing from elsewhere');
  },
);

test(
  'without --models no model is served; a --models that ' + 'is not a folder stops the server with a usage error',
  async (t) => {
    const server = await startServe(t, { cacheDir: tempDir(t), args: ['--auth', 'none'] });
    const r = await fetch(`${server.url}/models/tiny.onnx`);
    assert.equal(r.status, 404);
    assert.deepEqual(await r.json(), {
      error: { code: 'not_found', message: 'no models are served: start the server with --models DIR' },
    });

    const dir = tempDir(t);
    writeFileSync(join(dir, 'file.onnx'), 'x');
    for (const bad of [join(dir, 'missing'), join(dir, 'file.onnx')]) {
      const cli = await runCli([
        'serve',
        '--port',
        '0',
        '-w',
        TINY_CAFFEMODEL,
        '--cache-dir',
        tempDir(t),
        '--db',
        join(dir, 'g.db'),
        '--detector-model',
        YUNET_MODEL,
        '--auth',
        'none',
        '--models',
        bad,
      ]);
      assert.equal(cli.code, 2, `Expected exit code 2 for --models ${bad} but received ${cli.code}: ${cli.stderr}`);
      assert.match(
        cli.stderr,
        new RegExp(
          'Expected a folder of converted \\.onnx models for --models but received ' +
            `"${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`,
        ),
      );
    }
  },
);

test(
  '--auth all: the pages, the library and the models stay open (the page needs ' +
    'them before a token could be typed); the API does not',
  async (t) => {
    const dir = tempDir(t, 'vggface-serve-models-');
    await convertModel(TINY_CAFFEMODEL, join(dir, 'tiny.onnx'), { preprocessing: 'caffe' });
    const server = await startServe(t, {
      cacheDir: tempDir(t),
      env: { VGGFACE_TOKEN: 'models-token-0123456789' },
      args: ['--models', dir, '--auth', 'all'],
    });
    for (const path of ['/local', '/local.js', '/vggface/browser/vggface.js', '/detector.onnx', '/models/tiny.onnx']) {
      const r = await fetch(`${server.url}${path}`);
      await r.arrayBuffer();
      assert.equal(r.status, 200, `Expected 200 without a token for GET ${path} but received ${r.status}`);
    }
    assert.equal((await fetch(`${server.url}/v1/gallery`)).status, 401);
    const help = await runCli(['serve', '--help']);
    assert.match(help.stdout, /--models <dir>/);
  },
);
