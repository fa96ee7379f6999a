// @tags: browser
/**
 * The page at /local of `vggface serve --models DIR` in real headless Chromium (Debian's /usr/bin/chromium driven
 * by playwright-core): verify and a gallery kept in IndexedDB run in the page with vggface/browser, on the tiny
 * golden network converted here (as test/browser.test.ts does). Every request the page and its workers make is
 * recorded, in the browser and by the server's own request counter: none carries a body (so no photo), none goes to
 * the API. The distances the page shows are Node's, for a same-person pair of face-recognition-pivot.csv.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { chromium, type Request } from 'playwright-core';
import { convertModel } from '../src/onnx/convert-model.js';
import { cosineSimilarity, distance } from '../src/metrics/distance.js';
import { VggFace } from '../src/vggface.js';
import { FACES_DIR, ROOT, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import { startServe } from './fixtures/serve.js';

const CHROMIUM = '/usr/bin/chromium';
const fmt = (x: number) => x.toFixed(4);
/**
 * How far a distance may be from Node's. The browser's aligned crops are within a grey level of sharp's, so each
 * descriptor is Node's to cosine 1 - 2e-7 (an angle of 6e-4 rad; measured here 1 - 4e-8 for the pair), which moves
 * a cosine distance by at most sin(angle between the pair) times the two angles: measured 2.5e-5 for the pair.
 */
const DISTANCE_TOLERANCE = 1e-4;

/** Same-person pairs of the shared pivot table, by file name. */
function samePersonPairs(): [string, string][] {
  const rows = parse(readFileSync(join(FACES_DIR, 'face-recognition-pivot.csv')), { columns: true }) as Record<
    string,
    string
  >[];
  return rows.filter((r) => r.decision === 'Yes').map((r) => [r.file_x.split('/').pop()!, r.file_y.split('/').pop()!]);
}

interface Seen {
  url: string;
  method: string;
  body: Buffer | null;
}

test("/local in headless Chromium: verify and an IndexedDB gallery run in the page, no photo is sent, distances are Node's", async (t) => {
  if (!existsSync(CHROMIUM)) {
    assert.fail(
      `${CHROMIUM} is missing: install Debian's Chromium as root with "apt-get update && apt-get install -y chromium" (.ci/run does this before the tests)`,
    );
  }
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-browser.mjs'), '--quiet'], {
    encoding: 'utf8',
  });
  assert.equal(built.status, 0, `build-browser: ${built.stderr}`);
  const work = tempDir(t, 'vggface-local-');
  const models = join(work, 'models');
  mkdirSync(models);
  await convertModel(TINY_CAFFEMODEL, join(models, 'tiny.onnx'), { preprocessing: 'caffe' });

  // The pair: the first same-person row; the gallery: that person, another, and a third photo of the first to search.
  const pairs = samePersonPairs();
  const [a, b] = pairs[0];
  const probe = pairs.find(([x, y]) => x === a && y !== b)![1];
  const other = pairs.find(([x]) => x !== a && x !== b && x !== probe)![0];
  const photo = (f: string) => join(FACES_DIR, f);

  // Node's numbers, from the same model file.
  const node = await VggFace.load({ weights: join(models, 'tiny.onnx'), threads: 1, detectorModel: YUNET_MODEL });
  t.after(() => node.close());
  const ref: Record<string, Float32Array> = {};
  const files = [a, b, probe, other];
  for await (const r of node.describePhotos(files.map(photo))) {
    if (r.error) throw r.error;
    ref[files[r.index]] = r.descriptor;
  }
  const nodeDistance = distance(ref[a], ref[b], 'cosine');

  const server = await startServe(t, { cacheDir: tempDir(t), args: ['--models', models, '--auth', 'none'] });
  const browser = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(() => browser.close());
  // Every request of the context: the page's and its workers' (onnxruntime-web's files are fetched in the worker).
  const seen: Seen[] = [];
  const record = (r: Request) => seen.push({ url: r.url(), method: r.method(), body: r.postDataBuffer() });
  browser.on('request', record);
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  page.on('worker', (w) => w.on('console', (m) => m.type() === 'error' && problems.push(`worker: ${m.text()}`)));

  const t0 = Date.now();
  await page.goto(`${server.url}/local?model=tiny.onnx`);
  assert.match(
    (await page.textContent('#privacy'))!,
    /photos are never uploaded/,
    'the page says the photos stay in it',
  );
  assert.equal(
    await page.evaluate(() => self.crossOriginIsolated),
    true,
    'the page is cross-origin isolated (COOP/COEP): onnxruntime-web may use threads',
  );
  await page.waitForSelector('#model-status [data-loaded="tiny.onnx"]', { timeout: 120_000 });
  const loadedMs = Date.now() - t0;
  assert.match(
    (await page.textContent('#model-status'))!,
    /^tiny\.onnx: fp32, caffe preprocessing, 32-d; wasm, \d+ threads?$/,
  );

  // Verify: the pair's distance is Node's.
  await page.setInputFiles('#verify-a', photo(a));
  await page.setInputFiles('#verify-b', photo(b));
  await page.waitForSelector('#verdict [data-distance]', { timeout: 120_000 });
  const pageDistance = Number(await page.getAttribute('#verdict [data-distance]', 'data-distance'));
  console.log(
    `# /local: model loaded ${loadedMs} ms after navigation; ${a} vs ${b}: cosine distance ${pageDistance} in Chromium, ${nodeDistance} in Node`,
  );
  assert.ok(
    Math.abs(pageDistance - nodeDistance) <= DISTANCE_TOLERANCE,
    `Expected Node's cosine distance ${nodeDistance} for ${a} vs ${b} but received ${pageDistance}`,
  );
  assert.equal(
    await page.textContent('#verdict .numbers'),
    `cosine distance ${fmt(pageDistance)} (no threshold for this model: type one above)`,
  );
  assert.equal(await page.locator('#verify .face-box').count(), 2, 'a box on the face used in each photo');
  // With a threshold, the verdict; changing a photo compares again.
  const threshold = nodeDistance * 2;
  await page.fill('#threshold', String(threshold));
  await page.setInputFiles('#verify-b', photo(probe));
  await page.waitForSelector('#verdict [data-verified]', { timeout: 120_000 });
  const probeDistance = distance(ref[a], ref[probe], 'cosine');
  const shown = Number(await page.getAttribute('#verdict [data-distance]', 'data-distance'));
  assert.ok(
    Math.abs(shown - probeDistance) <= DISTANCE_TOLERANCE,
    `Expected Node's cosine distance ${probeDistance} for ${a} vs ${probe} but received ${shown}`,
  );
  assert.equal(
    await page.textContent('#verdict .verdict'),
    probeDistance <= threshold ? 'Same person' : 'Different people',
  );

  // Gallery: two people, searched with a third photo of the first; numbers as Node computes them.
  await page.fill('#gallery-id', 'Alice');
  await page.setInputFiles('#gallery-files', [photo(a), photo(b)]);
  await page.click('#gallery-add');
  await page.waitForSelector('#identities li[data-identity="Alice"]');
  await page.fill('#gallery-id', 'Bob');
  await page.setInputFiles('#gallery-files', [photo(other)]);
  await page.click('#gallery-add');
  await page.waitForSelector('#identities li[data-identity="Bob"]');
  const listed = () =>
    page.$$eval('#identities li[data-identity]', (items) =>
      items.map((li) => [li.getAttribute('data-identity'), Number(li.getAttribute('data-faces'))]),
    );
  assert.deepEqual(await listed(), [
    ['Alice', 2],
    ['Bob', 1],
  ]);
  await page.setInputFiles('#search-file', photo(probe));
  await page.waitForSelector('#search-result .verdict');
  const rows = await page.$$eval('#search-result tbody tr', (trs) =>
    trs.map((tr) => [
      tr.getAttribute('data-identity'),
      Number(tr.getAttribute('data-distance')),
      tr.querySelectorAll('td')[3].textContent,
    ]),
  );
  const expected = [
    [
      'Alice',
      Math.min(distance(ref[probe], ref[a], 'cosine'), distance(ref[probe], ref[b], 'cosine')),
      distance(ref[probe], ref[a], 'cosine') <= distance(ref[probe], ref[b], 'cosine') ? a : b,
    ],
    ['Bob', distance(ref[probe], ref[other], 'cosine'), other],
  ].sort((x, y) => (x[1] as number) - (y[1] as number));
  assert.deepEqual(
    rows.map((r) => [r[0], r[2]]),
    expected.map((e) => [e[0], e[2]]),
    'identities by their closest photo, best first',
  );
  rows.forEach((r, i) =>
    assert.ok(
      Math.abs((r[1] as number) - (expected[i][1] as number)) <= DISTANCE_TOLERANCE,
      `${r[0]}: Expected Node's distance ${expected[i][1]} but received ${r[1]}`,
    ),
  );
  assert.equal(
    await page.getAttribute('#search-result .verdict', 'data-identity'),
    (expected[0][1] as number) <= threshold ? expected[0][0] : 'unknown',
  );

  // Export: the descriptors, as Node computes them; then remove everyone, import the file back, reload: still there.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#gallery-export')]);
  assert.equal(download.suggestedFilename(), 'vggface-gallery.json');
  const exported = JSON.parse(readFileSync((await download.path())!, 'utf8'));
  assert.equal(exported.format, 'vggface-gallery');
  assert.equal(
    exported.model.key,
    `${node.info.metadata['vggface.weights.identity']}-caffe`,
    "the gallery is keyed by the network's identity, as Node's galleries are",
  );
  assert.deepEqual(
    exported.faces.map((f: { identity: string; name: string }) => [f.identity, f.name]).sort(),
    [
      ['Alice', a],
      ['Alice', b],
      ['Bob', other],
    ].sort(),
  );
  for (const f of exported.faces) {
    const c = cosineSimilarity(f.descriptor, ref[f.name]);
    assert.ok(
      c >= 0.99999,
      `${f.name}: Expected the descriptor Node computes (cosine >= 0.99999) but received cosine ${c}`,
    );
  }
  const exportPath = join(work, 'gallery.json');
  writeFileSync(exportPath, JSON.stringify(exported));
  await page.click('#identities li[data-identity="Bob"] button');
  await page.waitForSelector('#identities li[data-identity="Bob"]', { state: 'detached' });
  await page.click('#identities li[data-identity="Alice"] button');
  await page.waitForSelector('#identities li.empty');
  await page.setInputFiles('#gallery-import', exportPath);
  await page.waitForSelector('#gallery-result [data-imported="3"]');
  assert.deepEqual(await listed(), [
    ['Alice', 2],
    ['Bob', 1],
  ]);
  await page.setInputFiles('#gallery-import', exportPath);
  await page.waitForSelector('#gallery-result [data-imported="0"]');
  assert.deepEqual(
    await listed(),
    [
      ['Alice', 2],
      ['Bob', 1],
    ],
    'importing the same file twice adds nothing',
  );
  const wrongModel = join(work, 'other-model.json');
  writeFileSync(wrongModel, JSON.stringify({ ...exported, model: { ...exported.model, key: 'abc-deepface' } }));
  await page.setInputFiles('#gallery-import', wrongModel);
  await page.waitForSelector('#gallery-result .error');
  assert.match(
    (await page.textContent('#gallery-result'))!,
    /^other-model\.json: its descriptors are of model abc-deepface, but this page has .*-caffe loaded: they cannot be compared$/,
  );
  await page.reload();
  await page.waitForSelector('#identities li[data-identity="Bob"]', { timeout: 120_000 });
  assert.deepEqual(
    await listed(),
    [
      ['Alice', 2],
      ['Bob', 1],
    ],
    'the gallery is kept in the browser across reloads',
  );

  // No request carried a photo: none has a body, none contains a photo's bytes, none goes to the API or elsewhere.
  browser.off('request', record);
  const photoBytes = files.map((f) => ({ f, bytes: readFileSync(photo(f)) }));
  const http = seen.filter((r) => !r.url.startsWith('blob:') && !r.url.startsWith('data:'));
  for (const r of http) {
    assert.ok(
      r.url.startsWith(`${server.url}/`),
      `Expected only requests to ${server.url} but received ${r.method} ${r.url}`,
    );
    assert.ok(r.method === 'GET', `Expected only GET requests but received ${r.method} ${r.url}`);
    assert.equal(r.body, null, `${r.method} ${r.url}: a request body`);
    const path = new URL(r.url).pathname;
    assert.ok(!path.startsWith('/v1/'), `Expected no API request but received ${r.method} ${path}`);
    for (const { f, bytes } of photoBytes)
      assert.ok(!r.body || !(r.body as Buffer).includes(bytes.subarray(0, 4096)), `${r.url}: carries ${f}`);
  }
  const paths = new Set(http.map((r) => new URL(r.url).pathname));
  for (const p of [
    '/local',
    '/local.js',
    '/vggface/browser/vggface.js',
    '/vggface/browser/vggface-worker.js',
    '/vggface/browser/ort-wasm-simd-threaded.wasm',
    '/models/tiny.onnx',
    '/detector.onnx',
  ]) {
    assert.ok(paths.has(p), `the recorder saw GET ${p} (recorded: ${[...paths].join(', ')})`);
  }
  // The server's own count of what it answered, workers' requests included: pages, scripts and models, all GET.
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const answered = [...metrics.matchAll(/^vggface_http_requests_total\{([^}]*)\} (\d+)$/gm)].map((m) =>
    Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]])),
  );
  assert.ok(answered.length > 0, 'the server counted the requests');
  for (const r of answered) {
    assert.ok(
      r.method === 'GET' && !r.route.startsWith('/v1/'),
      `Expected only GET requests for files but the server answered ${r.method} ${r.route}`,
    );
  }
  assert.deepEqual(problems, [], 'no script errors, no CSP violations');
});
