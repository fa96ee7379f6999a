// @tags: browser
/**
 * The page at /local of `vggface serve --models DIR` in real headless Chromium (Debian's /usr/bin/chromium driven
 * by playwright-core): verify and a gallery kept in IndexedDB run in the page with vggface/browser, on the tiny
 * golden network converted here (as test/browser.test.ts does). Every request the page and its workers make is
 * recorded, in the browser and by the server's own request counter: none carries a body (so no photo), none goes to
 * the API. The distances the page shows are Node's, for a same-person pair of face-recognition-pivot.csv. The
 * gallery's .npy export is byte for byte what `vggface describe -o FILE.npy` writes for the same descriptors.
 */
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from './fixtures/chromium.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { parse } from 'csv-parse/sync';
import { chromium, type Download, type Request } from 'playwright-core';
import { convertModel } from '../src/onnx/convert-model.js';
import { cosineSimilarity, distance } from '../src/distance/distance.js';
import { openDescriptorSink } from '../src/output/descriptor-sink.js';
import { npyHeader, parseNpyHeader } from '../src/output/npy.js';
import { VggFace } from '../src/vggface.js';
import { FACES_DIR, ROOT, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import { startServe } from './fixtures/serve.js';

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

test(
  '/local in headless Chromium: verify and an IndexedDB gallery run in ' +
    "the page, no photo is sent, distances are Node's",
  async (t) => {
    requireChromium();
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
    // The profile is not under a tempDir: those are removed by hooks registered earlier, which run first, while
    // Chromium may still write into it (ENOTEMPTY); it goes once the browser has closed.
    const profile = mkdtempSync(join(tmpdir(), 'vggface-chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: [...CHROMIUM_ARGS],
    });
    t.after(async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    });
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
      `# /local: model loaded ${loadedMs} ms after navigation; ${a} vs ${b}: cosine ` +
        `distance ${pageDistance} in Chromium, ${nodeDistance} in Node`,
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
      // line-width: regex
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

    // Export as .npy: two downloads, FILE.npy (describe's float32 matrix) and FILE.npy.index.jsonl (whose each row is).
    await page.selectOption('#gallery-export-format', 'npy');
    const downloads: Download[] = [];
    const both = new Promise<void>((resolve, reject) => {
      // A browser that blocked the second download would leave the test waiting: fail, saying so.
      const timer = setTimeout(
        () => reject(new Error(`Expected 2 downloads within 30 s of the .npy export but received ${downloads.length}`)),
        30_000,
      );
      const onDownload = (d: Download) => {
        downloads.push(d);
        if (downloads.length < 2) return;
        clearTimeout(timer);
        page.off('download', onDownload);
        resolve();
      };
      page.on('download', onDownload);
    });
    await page.click('#gallery-export');
    await both;
    const saved = new Map<string, Buffer>();
    for (const d of downloads) saved.set(d.suggestedFilename(), readFileSync((await d.path())!));
    assert.deepEqual([...saved.keys()].sort(), ['vggface-gallery.npy', 'vggface-gallery.npy.index.jsonl']);
    assert.equal(
      await page.textContent('#gallery-result'),
      'Exported 3 faces to vggface-gallery.npy and vggface-gallery.npy.index.jsonl.',
    );
    const npy = saved.get('vggface-gallery.npy')!;
    const indexText = saved.get('vggface-gallery.npy.index.jsonl')!.toString('utf8');
    const index = indexText
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(index[0], {
      vggface: 'describe-index',
      format: 'npy',
      dimension: 32,
      layer: 'fc7',
      normalized: true,
      detector: 'yunet',
      model: exported.model,
    });
    const lines = index.slice(1) as { image: string; rows: [number, number]; identity: string }[];
    assert.deepEqual(
      lines.map((l) => l.rows),
      [
        [0, 1],
        [1, 2],
        [2, 3],
      ],
    );
    assert.deepEqual(
      lines.map((l) => [l.identity, l.image]).sort(),
      [
        ['Alice', a],
        ['Alice', b],
        ['Bob', other],
      ].sort(),
    );
    assert.deepEqual(parseNpyHeader(npy), { rows: 3, columns: 32, headerBytes: 128 }, "Node's reader accepts it");
    assert.ok(npy.subarray(0, 128).equals(npyHeader(3, 32)), "the header is Node's, padding and newline included");
    assert.equal(npy.length, 128 + 3 * 32 * 4);
    const matrix = new Float32Array(npy.buffer.slice(npy.byteOffset + 128, npy.byteOffset + npy.length));
    // The gallery's descriptors, in the index's order, as Float32Arrays: each row holds exactly them.
    const gallery = lines.map((l) => {
      const f = exported.faces.find(
        (x: { identity: string; name: string }) => x.identity === l.identity && x.name === l.image,
      );
      assert.ok(f, `${l.identity}, ${l.image}: in the gallery`);
      return Float32Array.from(f.descriptor as number[]);
    });
    lines.forEach((l, r) => {
      assert.deepEqual(
        Array.from(matrix.subarray(r * 32, r * 32 + 32)),
        Array.from(gallery[r]),
        `row ${r}: ${l.image}`,
      );
      const c = cosineSimilarity(gallery[r], ref[l.image]);
      assert.ok(
        c >= 0.99999,
        `row ${r}: Expected Node's descriptor of ${l.image} (cosine >= 0.99999) but received ${c}`,
      );
    });
    // Node's describe writer given the same Float32Arrays: the same bytes; its index is the page's without the model
    // and the identities the page adds.
    const nodeNpy = join(work, 'node.npy');
    const sink = await openDescriptorSink({
      path: nodeNpy,
      format: 'npy',
      resume: false,
      overwrite: false,
      settings: { dimension: 32, layer: 'fc7', normalized: true, detector: 'yunet' },
      stdout: new PassThrough(),
    });
    for (const [r, l] of lines.entries())
      await sink.write({ image: l.image, detected: false, rows: [{ descriptor: gallery[r] }] });
    await sink.close();
    const nodeBytes = readFileSync(nodeNpy);
    assert.ok(
      npy.equals(nodeBytes),
      `Expected the ${nodeBytes.length} bytes vggface describe writes but the page exported ${npy.length} other bytes`,
    );
    assert.deepEqual(
      index.map((line) =>
        JSON.stringify(Object.fromEntries(Object.entries(line).filter(([k]) => k !== 'model' && k !== 'identity'))),
      ),
      readFileSync(`${nodeNpy}.index.jsonl`, 'utf8').trimEnd().split('\n'),
      "the index is describe's, plus the model and the identities",
    );

    // Re-imported into an empty gallery: the same people, and a search finds the same faces at the same distances.
    const npyPath = join(work, 'vggface-gallery.npy');
    const indexPath = `${npyPath}.index.jsonl`;
    writeFileSync(npyPath, npy);
    writeFileSync(indexPath, indexText);
    await page.click('#identities li[data-identity="Bob"] button');
    await page.waitForSelector('#identities li[data-identity="Bob"]', { state: 'detached' });
    await page.click('#identities li[data-identity="Alice"] button');
    await page.waitForSelector('#identities li.empty');
    await page.setInputFiles('#gallery-import', [npyPath, indexPath]);
    await page.waitForSelector('#gallery-result [data-imported="3"]');
    assert.equal(await page.textContent('#gallery-result'), 'Imported 3 faces (0 already here).');
    assert.deepEqual(await listed(), [
      ['Alice', 2],
      ['Bob', 1],
    ]);
    await page.$eval('#search-result', (e) => e.replaceChildren());
    await page.setInputFiles('#search-file', photo(probe));
    await page.waitForSelector('#search-result .verdict');
    const again = await page.$$eval('#search-result tbody tr', (trs) =>
      trs.map((tr) => [
        tr.getAttribute('data-identity'),
        Number(tr.getAttribute('data-distance')),
        tr.querySelectorAll('td')[3].textContent,
      ]),
    );
    assert.deepEqual(
      again.map((r) => [r[0], r[2]]),
      rows.map((r) => [r[0], r[2]]),
      'the same identities by the same closest photos',
    );
    again.forEach((r, i) =>
      assert.ok(
        Math.abs((r[1] as number) - (rows[i][1] as number)) <= 1e-6,
        `${r[0]}: Expected the distance before the export, ${rows[i][1]}, but received ${r[1]}`,
      ),
    );
    await page.setInputFiles('#gallery-import', [npyPath, indexPath]);
    await page.waitForSelector('#gallery-result [data-imported="0"]');

    // Refused, with the file and the problem on the page, and the gallery left as it was.
    const refusal = async (files: Record<string, Buffer | string>) => {
      const paths = Object.entries(files).map(([name, bytes]) => {
        writeFileSync(join(work, name), bytes);
        return join(work, name);
      });
      await page.$eval('#gallery-result', (e) => e.replaceChildren());
      await page.setInputFiles('#gallery-import', paths);
      await page.waitForSelector('#gallery-result .error');
      assert.deepEqual(await listed(), [
        ['Alice', 2],
        ['Bob', 1],
      ]);
      return page.textContent('#gallery-result');
    };
    const indexWith = (header: Record<string, unknown>, body: string[] = indexText.trimEnd().split('\n').slice(1)) =>
      `${[JSON.stringify({ ...index[0], ...header }), ...body].join('\n')}\n`;
    const wide = Buffer.concat([npyHeader(3, 33), Buffer.alloc(3 * 33 * 4)]);
    assert.equal(
      await refusal({ 'wide.npy': wide, 'wide.npy.index.jsonl': indexWith({ dimension: 33 }) }),
      "wide.npy: Expected rows of 32 values (this model's descriptor size) but received rows of 33",
    );
    assert.equal(
      await refusal({
        'short.npy': npy,
        'short.npy.index.jsonl': indexWith({}, indexText.trimEnd().split('\n').slice(1, 3)),
      }),
      'short.npy has 3 rows but short.npy.index.jsonl lists 2 rows (in 2 lines after its header): they are not a pair',
    );
    assert.equal(
      await refusal({ 'cut.npy': npy.subarray(0, npy.length - 4), 'cut.npy.index.jsonl': indexText }),
      'cut.npy: truncated: its shape (3, 32) needs 384 bytes of float32 data but it has 380',
    );
    const doubles = Buffer.from(npy);
    doubles.write("'<f8'", doubles.indexOf("'<f4'"), 'latin1');
    assert.equal(
      await refusal({ 'f8.npy': doubles, 'f8.npy.index.jsonl': indexText }),
      "f8.npy: Expected float32 values (descr '<f4') but received descr '<f8'",
    );
    assert.equal(
      await refusal({
        'other.npy': npy,
        'other.npy.index.jsonl': indexWith({ model: { ...exported.model, key: 'abc-deepface' } }),
      }),
      'other.npy.index.jsonl: its descriptors are of model abc-deepface, ' +
        `but this page has ${exported.model.key} loaded: they cannot be compared`,
    );
    assert.equal(
      await refusal({ 'node.npy': nodeBytes, 'node.npy.index.jsonl': readFileSync(`${nodeNpy}.index.jsonl`) }),
      'node.npy.index.jsonl: its header names no model (as the index of vggface describe does not), so its ' +
        `descriptors cannot be checked against this page's ${exported.model.key}: export the gallery from this page`,
    );
    const noMagic = Buffer.from(npy);
    noMagic[0] = 0x7b;
    assert.equal(
      await refusal({ 'magic.npy': noMagic, 'magic.npy.index.jsonl': indexText }),
      'magic.npy: not a .npy file (Expected the magic \\x93NUMPY at its start but received other bytes)',
    );
    assert.equal(
      await refusal({ 'alone.npy': npy }),
      'Expected two files, FILE.npy and its FILE.npy.index.jsonl, but received alone.npy',
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
  },
);
