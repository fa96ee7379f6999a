/**
 * `vggface serve` over real HTTP, against servers started by the tests (tiny golden model, shared YuNet):
 * every route and its answers checked against the library, every limit and error status, authentication,
 * the OpenAPI document against what the server enforces, metrics, 503s under load, /healthz answering ahead of
 * saturated workers, and a graceful SIGTERM.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { Validator } from '@seriousme/openapi-schema-validator';
import { distance } from '../src/distance/distance.js';
import { VggFace } from '../src/vggface.js';
import { assertClose, ROOT, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import { call, form, jsonImages, photo, startServe, type Answer } from './fixtures/serve.js';

process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const TOKEN = 'test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const THRESHOLD = 0.05;

// biome-ignore lint/suspicious/noExplicitAny: JSON answers of any shape, checked field by field
type Json = Record<string, any>;

/** Every error answer is exactly {error: {code, message}}, with no file path, stack or module name in it. */
function assertError(r: Answer, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const body = r.body as Json;
  assert.deepEqual(Object.keys(body), ['error']);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message']);
  assert.equal(body.error.code, code);
  const m = String(body.error.message);
  for (const leak of [ROOT, tmpdir(), 'node_modules', '    at ', '.js:'])
    assert.ok(!m.includes(leak), `error message leaks ${leak}: ${m}`);
  if (message) assert.match(m, message);
}

async function grayPng(dir: string, width: number, height: number, name: string): Promise<string> {
  const path = join(dir, name);
  await sharp({ create: { width, height, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .png()
    .toFile(path);
  return path;
}

test('serve: routes, limits, auth and the OpenAPI document, as the library computes', async (t) => {
  const cacheDir = tempDir(t);
  const dir = tempDir(t);
  const server = await startServe(t, {
    cacheDir,
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--threshold', String(THRESHOLD), '--max-images', '4', '--max-body', '1m', '--max-pixels', '600000'],
  });
  const url = (path: string) => `${server.url}${path}`;
  const model = await VggFace.load({ weights: TINY_CAFFEMODEL, cacheDir });
  t.after(() => model.close());
  const noFace = await grayPng(dir, 400, 300, 'gray.png');
  const answers: { route: string; method: string; answer: Answer }[] = [];
  const send = async (
    method: string,
    path: string,
    body?: FormData | Record<string, unknown> | string,
    headers: Record<string, string> = {},
  ) => {
    const answer = await call(url(path), method, body, headers);
    answers.push({ route: path, method, answer });
    return answer;
  };

  await t.test(
    'describe: every face with box, landmarks and score, the descriptors the library gives; multipart and JSON alike',
    async () => {
      const photos = [photo('couple.jpg'), photo('img1.jpg'), noFace];
      const multipart = await send('POST', '/v1/describe', form(photos));
      assert.equal(multipart.status, 200, JSON.stringify(multipart.body));
      const json = await send('POST', '/v1/describe', jsonImages(photos));
      assert.deepEqual(json.body, multipart.body);
      const images = (multipart.body as Json).images as Json[];
      assert.deepEqual(
        images.map((i) => [i.name, i.width, i.height, i.faces.length]),
        [
          ['couple.jpg', 800, 557, 2],
          ['img1.jpg', 592, 800, 1],
          ['gray.png', 400, 300, 0],
        ],
      );
      const expected: { face: { box: { x: number; width: number }; score: number }; descriptor: Float32Array }[][] = [];
      for await (const r of model.describeFaces(photos)) expected.push([...r.faces!]);
      images.forEach((img, i) =>
        img.faces.forEach((f: Json, k: number) => {
          const lib = expected[i][k];
          assertClose(f.descriptor, lib.descriptor, 1e-5, `${img.name} face ${k}`);
          assert.ok(Math.abs(f.box.x - lib.face.box.x) <= 0.005 && Math.abs(f.box.width - lib.face.box.width) <= 0.005);
          assert.ok(Math.abs(f.score - lib.face.score) <= 5e-5);
          assert.deepEqual(Object.keys(f.landmarks), ['rightEye', 'leftEye', 'noseTip', 'mouthRight', 'mouthLeft']);
        }),
      );

      const largest = await send('POST', '/v1/describe', form([photo('couple.jpg')], { faces: 'largest' }));
      assert.deepEqual((largest.body as Json).images[0].faces, [images[0].faces[0]]);
      const maxFaces = await send('POST', '/v1/describe', jsonImages([photo('couple.jpg')], { maxFaces: 1 }));
      assert.deepEqual((maxFaces.body as Json).images[0].faces, [images[0].faces[0]]);

      const crop = await send('POST', '/v1/describe', form([photo('img3.jpg')], { faces: 'none', fit: 'pad' }));
      assert.equal(crop.status, 200);
      const cropImage = (crop.body as Json).images[0];
      assert.deepEqual(Object.keys(cropImage), ['name', 'faces']);
      assertClose(
        cropImage.faces[0].descriptor,
        await model.describe(readFileSync(photo('img3.jpg')), { fit: 'pad' }),
        1e-5,
        'crop',
      );

      const fc8 = await send(
        'POST',
        '/v1/describe',
        jsonImages([photo('img1.jpg')], { layer: 'fc8', normalize: false }),
      );
      const libFc8 = [];
      for await (const r of model.describeFaces([photo('img1.jpg')], { layer: 'fc8', normalize: false }))
        libFc8.push(r.faces![0].descriptor);
      assert.equal((fc8.body as Json).images[0].faces[0].descriptor.length, model.dimension('fc8'));
      assertClose((fc8.body as Json).images[0].faces[0].descriptor, libFc8[0], 1e-5, 'fc8');
    },
  );

  await t.test('verify: the library distance against the threshold, the face used in each photo', async () => {
    const lib: Float32Array[] = [];
    for await (const r of model.describePhotos([photo('img1.jpg'), photo('img2.jpg')])) lib.push(r.descriptor!);
    const r = await send('POST', '/v1/verify', form([photo('img1.jpg'), photo('img2.jpg')]));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const v = r.body as Json;
    const d = distance(lib[0], lib[1], 'cosine');
    assert.ok(Math.abs(v.distance - d) < 1e-6, `${v.distance} vs ${d}`);
    assert.deepEqual([v.threshold, v.metric, v.verified], [THRESHOLD, 'cosine', d <= THRESHOLD]);
    assert.deepEqual(
      v.images.map((i: Json) => [i.name, i.width, i.height]),
      [
        ['img1.jpg', 592, 800],
        ['img2.jpg', 800, 600],
      ],
    );
    assert.ok(v.images[0].face.box.width > 100 && v.images[0].face.score > 0.75);

    const euclid = await send(
      'POST',
      '/v1/verify',
      jsonImages([photo('img1.jpg'), photo('img2.jpg')], { metric: 'euclidean', threshold: 10 }),
    );
    assert.equal(euclid.status, 200);
    assert.ok(Math.abs((euclid.body as Json).distance - distance(lib[0], lib[1], 'euclidean')) < 1e-6);
    assert.deepEqual([(euclid.body as Json).verified, (euclid.body as Json).threshold], [true, 10]);
    assertError(
      await send('POST', '/v1/verify', jsonImages([photo('img1.jpg'), photo('img2.jpg')], { metric: 'angular' })),
      422,
      'no_threshold',
      /no angular threshold/,
    );

    const crops = await send('POST', '/v1/verify', form([photo('img1.jpg'), photo('img2.jpg')], { faces: 'none' }));
    const [c1, c2] = await model.describe([readFileSync(photo('img1.jpg')), readFileSync(photo('img2.jpg'))]);
    assert.ok(Math.abs((crops.body as Json).distance - distance(c1, c2)) < 1e-6);
    assert.equal((crops.body as Json).images[0].face, undefined);
    assertError(
      await send('POST', '/v1/verify', form([photo('img1.jpg'), noFace])),
      422,
      'no_face',
      /^images\[1\] \(gray\.png\): no face found$/,
    );
  });

  await t.test(
    'gallery: the token guards changes; add, duplicates, list, search as the library ranks, remove',
    async () => {
      assertError(await send('POST', '/v1/search', form([photo('img4.jpg')])), 404, 'gallery_empty');
      const denied = await send('POST', '/v1/gallery/alice/faces', form([photo('img1.jpg')]));
      assertError(denied, 401, 'unauthorized');
      assert.equal(denied.headers.get('www-authenticate'), 'Bearer realm="vggface"');
      assertError(
        await send('POST', '/v1/gallery/alice/faces', form([photo('img1.jpg')]), { authorization: `Bearer ${TOKEN}x` }),
        401,
        'unauthorized',
      );
      assertError(
        await send('POST', '/v1/gallery/alice/faces', form([photo('img1.jpg')]), { authorization: TOKEN }),
        401,
        'unauthorized',
      );

      const added = await send(
        'POST',
        '/v1/gallery/alice/faces',
        form([photo('img1.jpg'), photo('img2.jpg'), photo('img1.jpg')]),
        auth,
      );
      assert.equal(added.status, 200, JSON.stringify(added.body));
      assert.deepEqual(
        (added.body as Json).images.map((i: Json) => [i.name, i.status, i.identity]),
        [
          ['img1.jpg', 'added', 'alice'],
          ['img2.jpg', 'added', 'alice'],
          ['img1.jpg', 'duplicate', 'alice'],
        ],
      );
      const bob = await send('POST', '/v1/gallery/bob/faces', jsonImages([photo('img3.jpg'), photo('img2.jpg')]), auth);
      assert.deepEqual(
        (bob.body as Json).images.map((i: Json) => [i.status, i.identity]),
        [
          ['added', 'bob'],
          ['duplicate', 'alice'],
        ],
      );
      // One image without a face: nothing of the request is stored.
      assertError(
        await send('POST', '/v1/gallery/carol/faces', form([photo('img5.jpg'), noFace]), auth),
        422,
        'no_face',
      );
      const list = await send('GET', '/v1/gallery');
      assert.deepEqual(list.body, {
        identities: [
          { identity: 'alice', faces: 2 },
          { identity: 'bob', faces: 1 },
        ],
      });

      const lib: Float32Array[] = [];
      for await (const r of model.describePhotos([
        photo('img4.jpg'),
        photo('img1.jpg'),
        photo('img2.jpg'),
        photo('img3.jpg'),
      ]))
        lib.push(r.descriptor!);
      const dAlice = Math.min(distance(lib[0], lib[1]), distance(lib[0], lib[2]));
      const dBob = distance(lib[0], lib[3]);
      const found = await send('POST', '/v1/search', form([photo('img4.jpg')], { k: '2', threshold: '1' }));
      assert.equal(found.status, 200, JSON.stringify(found.body));
      const result = (found.body as Json).results[0];
      const order = dAlice < dBob ? ['alice', 'bob'] : ['bob', 'alice'];
      assert.deepEqual(
        result.matches.map((m: Json) => m.identity),
        order,
      );
      assert.equal(result.identity, order[0]);
      assert.ok(Math.abs(result.matches.find((m: Json) => m.identity === 'alice').distance - dAlice) < 1e-6);
      assert.ok(Math.abs(result.matches.find((m: Json) => m.identity === 'bob').distance - dBob) < 1e-6);
      assert.deepEqual(
        [result.name, result.threshold, result.metric, result.matches[0].verified],
        ['img4.jpg', 1, 'cosine', true],
      );
      const strict = await send(
        'POST',
        '/v1/search',
        jsonImages([photo('img4.jpg')], { k: 1, threshold: Math.min(dAlice, dBob) / 2 }),
      );
      assert.deepEqual(
        [(strict.body as Json).results[0].identity, (strict.body as Json).results[0].matches.length],
        ['unknown', 1],
      );
      // No match under the threshold still answers the nearest face's distance (a number, never null).
      const nearest = (strict.body as Json).results[0].distance;
      assert.ok(Math.abs(nearest - Math.min(dAlice, dBob)) < 1e-6, `${nearest}`);

      assertError(await send('DELETE', '/v1/gallery/bob'), 401, 'unauthorized');
      assert.deepEqual((await send('DELETE', '/v1/gallery/bob', undefined, auth)).body, {
        identity: 'bob',
        removed: 1,
      });
      assertError(
        await send('DELETE', '/v1/gallery/bob', undefined, auth),
        404,
        'identity_not_found',
        /no identity "bob"/,
      );
      assertError(await send('DELETE', '/v1/gallery/unknown', undefined, auth), 400, 'invalid_request', /params\/id/);
      assertError(
        await send('POST', '/v1/gallery/%01x/faces', form([photo('img1.jpg')]), auth),
        400,
        'invalid_request',
        /params\/id/,
      );
    },
  );

  await t.test('limits and malformed requests: 413, 415, 422, 400, 404, each as {error: {code, message}}', async () => {
    assertError(
      await send('POST', '/v1/describe', { images: [{ data: 'A'.repeat(1.2 * 1024 * 1024) }] }),
      413,
      'body_too_large',
    );
    const big = new FormData();
    big.append('images', new Blob([new Uint8Array(1.2 * 1024 * 1024)]), 'big.jpg');
    assertError(await send('POST', '/v1/describe', big), 413, 'body_too_large');
    const five = ['img1.jpg', 'img2.jpg', 'img3.jpg', 'img4.jpg', 'img5.jpg'].map(photo);
    assertError(await send('POST', '/v1/describe', form(five)), 413, 'too_many_images', /at most 4/);
    assertError(
      await send('POST', '/v1/describe', jsonImages(five.map(() => photo('img12.jpg')))),
      413,
      'too_many_images',
      /at most 4/,
    );
    assertError(
      await send('POST', '/v1/describe', form([photo('img20.jpg')])),
      413,
      'image_too_large',
      /^images\[0\] \(img20\.jpg\): image is 800x800 = 640000 pixels, over the server's limit of 600000$/,
    );

    assertError(
      await send('POST', '/v1/describe', 'hello', { 'content-type': 'text/plain' }),
      415,
      'unsupported_media_type',
    );
    const svg = new FormData();
    svg.append(
      'images',
      new Blob(['<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>']),
      'x.svg',
    );
    assertError(await send('POST', '/v1/describe', svg), 415, 'unsupported_image_type', /svg images are not supported/);

    assertError(
      await send('POST', '/v1/describe', {
        images: [{ data: Buffer.from('not an image at all').toString('base64'), name: 'junk.jpg' }],
      }),
      422,
      'invalid_image',
      /^images\[0\] \(junk\.jpg\): not a decodable image$/,
    );
    const truncated = readFileSync(photo('img1.jpg')).subarray(0, 5000);
    assertError(
      await send('POST', '/v1/describe', { images: [{ data: truncated.toString('base64') }] }),
      422,
      'invalid_image',
      /^images\[0\]: /,
    );

    assertError(await send('POST', '/v1/describe', { images: [{ data: '!!!!' }] }), 400, 'invalid_base64');
    assertError(
      await send('POST', '/v1/describe', '{"images": [', { 'content-type': 'application/json' }),
      400,
      'invalid_json',
    );
    assertError(
      await send('POST', '/v1/describe', jsonImages([photo('img1.jpg')], { treshold: 1 })),
      400,
      'invalid_request',
      /unknown field "treshold"/,
    );
    assertError(
      await send('POST', '/v1/describe', jsonImages([photo('img1.jpg')], { fit: 'pad' })),
      400,
      'invalid_request',
      /fit applies to face crops/,
    );
    assertError(
      await send('POST', '/v1/describe', form([photo('img1.jpg')], { faces: 'none', minScore: '0.5' })),
      400,
      'invalid_request',
      /apply to detected faces/,
    );
    assertError(
      await send('POST', '/v1/search', form([photo('img1.jpg')], { k: 'many' })),
      400,
      'invalid_request',
      /body\/k must be integer/,
    );
    assertError(
      await send('POST', '/v1/verify', jsonImages([photo('img1.jpg')])),
      400,
      'invalid_request',
      /fewer than 2 items/,
    );
    assertError(
      await send('POST', '/v1/describe', form([photo('img1.jpg')], { faces: 'some' })),
      400,
      'invalid_request',
      /must be one of "all", "largest", "none"/,
    );
    const wrongField = new FormData();
    wrongField.append('photo', new Blob([readFileSync(photo('img1.jpg'))]), 'img1.jpg');
    assertError(await send('POST', '/v1/describe', wrongField), 400, 'invalid_request', /fields named images/);
    assertError(await send('GET', '/v2/nothing'), 404, 'not_found');
  });

  await t.test(
    'the OpenAPI document is valid, lists every route, and its schemas accept and refuse what the server does',
    async () => {
      const r = await send('GET', '/openapi.json');
      assert.equal(r.status, 200);
      const doc = r.body as Json;
      const validator = new Validator();
      const res = await validator.validate(doc as never);
      assert.ok(res.valid, JSON.stringify(res.errors));
      assert.equal(doc.openapi, '3.1.0');
      const operations = Object.entries(doc.paths as Json).flatMap(([path, ops]) =>
        Object.keys(ops as Json).map((m) => `${m.toUpperCase()} ${path}`),
      );
      assert.deepEqual(operations.sort(), [
        'DELETE /v1/gallery/{id}',
        'GET /healthz',
        'GET /metrics',
        'GET /openapi.json',
        'GET /v1/gallery',
        'POST /v1/describe',
        'POST /v1/gallery/{id}/faces',
        'POST /v1/search',
        'POST /v1/verify',
      ]);
      const op = (path: string, method: string) => doc.paths[path][method] as Json;
      assert.deepEqual(op('/v1/gallery/{id}/faces', 'post').security, [{ bearer: [] }]);
      assert.deepEqual(op('/v1/gallery/{id}', 'delete').security, [{ bearer: [] }]);
      assert.equal(op('/v1/describe', 'post').security, undefined); // auth writes: reading needs no token
      assert.ok(op('/v1/describe', 'post').responses['503'].headers['Retry-After']);

      const ajv = new Ajv2020({ strict: false, allErrors: true });
      ajv.addFormat('binary', true);
      const requestSchema = (path: string, type: string) => op(path, 'post').requestBody.content[type].schema;
      // The multipart form is the JSON body with files for images.
      for (const path of ['/v1/describe', '/v1/verify', '/v1/search', '/v1/gallery/{id}/faces']) {
        const [j, m] = [requestSchema(path, 'application/json'), requestSchema(path, 'multipart/form-data')];
        const { images: ji, ...jOptions } = j.properties;
        const { images: mi, ...mOptions } = m.properties;
        assert.deepEqual(mOptions, jOptions, path);
        assert.deepEqual(m.allOf, j.allOf, path);
        assert.deepEqual(
          [mi.minItems, mi.maxItems, mi.items.type, mi.items.format],
          [ji.minItems, ji.maxItems, 'string', 'binary'],
          path,
        );
      }
      // Requests the document accepts are accepted, and those it refuses are refused, by the server.
      const img = (n: string) => ({ data: readFileSync(photo(n)).toString('base64'), name: n });
      const cases: { path: string; route?: string; body: Json; valid: boolean; status: number }[] = [
        { path: '/v1/describe', body: { images: [img('img1.jpg')] }, valid: true, status: 200 },
        {
          path: '/v1/describe',
          body: { images: [img('img1.jpg')], faces: 'none', fit: 'stretch' },
          valid: true,
          status: 200,
        },
        {
          path: '/v1/describe',
          body: { images: [img('couple.jpg')], faces: 'all', maxFaces: 1, minScore: 0.9, align: '5pt', margin: 0.3 },
          valid: true,
          status: 200,
        },
        { path: '/v1/describe', body: { images: [img('img1.jpg')], fit: 'pad' }, valid: false, status: 400 },
        {
          path: '/v1/describe',
          body: { images: [img('img1.jpg')], faces: 'none', align: 'eyes' },
          valid: false,
          status: 400,
        },
        {
          path: '/v1/describe',
          body: { images: [img('img1.jpg')], faces: 'largest', maxFaces: 2 },
          valid: false,
          status: 400,
        },
        { path: '/v1/describe', body: { images: [] }, valid: false, status: 400 },
        { path: '/v1/describe', body: { images: [{ name: 'no data' }] }, valid: false, status: 400 },
        { path: '/v1/describe', body: { images: [img('img1.jpg')], layer: 'fc9' }, valid: false, status: 400 },
        { path: '/v1/describe', body: { images: [img('img1.jpg')], margin: 5 }, valid: false, status: 400 },
        {
          path: '/v1/describe',
          body: { images: Array.from({ length: 5 }, () => img('img12.jpg')) },
          valid: false,
          status: 413,
        },
        {
          path: '/v1/verify',
          body: { images: [img('img1.jpg'), img('img2.jpg')], metric: 'euclidean_l2', threshold: 0.5 },
          valid: true,
          status: 200,
        },
        {
          path: '/v1/verify',
          body: { images: [img('img1.jpg'), img('img2.jpg'), img('img3.jpg')] },
          valid: false,
          status: 400,
        },
        {
          path: '/v1/verify',
          body: { images: [img('img1.jpg'), img('img2.jpg')], threshold: -1 },
          valid: false,
          status: 400,
        },
        { path: '/v1/search', body: { images: [img('img1.jpg')], k: 3 }, valid: true, status: 200 },
        { path: '/v1/search', body: { images: [img('img1.jpg')], k: 0 }, valid: false, status: 400 },
        { path: '/v1/search', body: { images: [img('img1.jpg')], layer: 'fc7' }, valid: false, status: 400 },
        {
          path: '/v1/gallery/{id}/faces',
          route: '/v1/gallery/carol/faces',
          body: { images: [img('img5.jpg')], faces: 'largest' },
          valid: true,
          status: 200,
        },
        {
          path: '/v1/gallery/{id}/faces',
          route: '/v1/gallery/carol/faces',
          body: { images: [img('img5.jpg')], k: 2 },
          valid: false,
          status: 400,
        },
      ];
      for (const c of cases) {
        const ok = ajv.validate(requestSchema(c.path, 'application/json'), c.body);
        assert.equal(
          ok,
          c.valid,
          `${c.path} ${JSON.stringify(Object.keys(c.body))}: the document says ${ok} (${ajv.errorsText()})`,
        );
        const answer = await send('POST', c.route ?? c.path, c.body, auth);
        assert.equal(answer.status, c.status, `${c.path}: ${JSON.stringify(answer.body).slice(0, 300)}`);
      }
      const idSchema = op('/v1/gallery/{id}', 'delete').parameters[0].schema;
      assert.deepEqual(
        ['carol', 'Ana María', 'unknown', '   ', 'a\u0001b', 'x'.repeat(257)].map((id) => ajv.validate(idSchema, id)),
        [true, true, false, false, false, false],
      );

      // Every answer so far matches the document: its status is listed and its body fits the schema.
      for (const { route, method, answer } of answers) {
        const path = Object.keys(doc.paths).find((p) => new RegExp(`^${p.replace(/\{\w+\}/g, '[^/]+')}$`).test(route));
        if (!path) {
          assert.equal(answer.status, 404, route);
          continue;
        }
        const spec = doc.paths[path][method.toLowerCase()].responses[String(answer.status)];
        assert.ok(spec, `${method} ${route}: status ${answer.status} is not in the document`);
        const schema = spec.content?.['application/json']?.schema;
        if (schema && typeof answer.body === 'object')
          assert.ok(ajv.validate(schema, answer.body), `${method} ${route} ${answer.status}: ${ajv.errorsText()}`);
      }
    },
  );

  await t.test(
    'healthz and the web page need no token; the page is served with a strict content security policy',
    async () => {
      const h = await call(url('/healthz'), 'GET');
      assert.deepEqual(h.body, {
        status: 'ok',
        workers: { ready: 1, total: 1 },
        queue: { waiting: 0, capacity: 32 },
        inflightImages: 0,
        gallery: { backend: 'sqlite', state: 'ok' },
      });
      const page = await fetch(url('/'));
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type')!, /^text\/html/);
      assert.match(page.headers.get('content-security-policy')!, /default-src 'self'/);
      const html = await page.text();
      assert.equal(html, readFileSync(join(ROOT, 'web', 'index.html'), 'utf8'));
      assert.ok(!/(src|href)="(https?:)?\/\//.test(html), 'the page loads nothing from elsewhere');
      for (const asset of ['/app.js', '/style.css', '/favicon.svg'])
        assert.equal((await fetch(url(asset))).status, 200, asset);
    },
  );
});

test(
  'serve: Prometheus metrics count requests by route and ' + 'status, latency, batches, images and faces (two workers)',
  async (t) => {
    const server = await startServe(t, {
      cacheDir: tempDir(t),
      args: ['--auth', 'none', '--threshold', '0.5', '--workers', '2'],
    });
    const url = (path: string) => `${server.url}${path}`;
    assert.deepEqual((await call<Json>(url('/healthz'), 'GET')).body.workers, { ready: 2, total: 2 });
    const d1 = await call(url('/v1/describe'), 'POST', form([photo('couple.jpg')]));
    const d2 = await call(url('/v1/describe'), 'POST', form([photo('img1.jpg'), photo('selfie-many-people.jpg')]));
    assert.equal((await call(url('/v1/verify'), 'POST', form([photo('img1.jpg'), photo('img2.jpg')]))).status, 200);
    assert.equal((await call(url('/v1/describe'), 'POST', form([photo('img1.jpg')], { faces: 'x' }))).status, 400);
    const faces = [d1, d2]
      .flatMap((r) => (r.body as Json).images)
      .reduce((s: number, i: Json) => s + i.faces.length, 0);
    assert.equal(faces, 2 + 1 + 6);

    const res = await fetch(url('/metrics'));
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    const samples = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        assert.match(
          line,
          // line-width: regex
          /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/,
          line,
        );
        continue;
      }
      const m =
        // line-width: regex
        /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?) (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(
          line,
        );
      assert.ok(m, `not a Prometheus sample line: ${line}`);
      samples.set(m[1], Number(m[2]));
    }
    const get = (key: string) => {
      assert.ok(samples.has(key), `missing ${key}`);
      return samples.get(key)!;
    };
    assert.equal(get('vggface_http_requests_total{route="/v1/describe",method="POST",status="200"}'), 2);
    assert.equal(get('vggface_http_requests_total{route="/v1/describe",method="POST",status="400"}'), 1);
    assert.equal(get('vggface_http_requests_total{route="/v1/verify",method="POST",status="200"}'), 1);
    assert.equal(
      get('vggface_http_request_duration_seconds_count{route="/v1/describe",method="POST",status="200"}'),
      2,
    );
    // Histogram buckets are cumulative and end at the count.
    const buckets = [...samples.entries()].filter(
      ([k]) =>
        k.startsWith('vggface_http_request_duration_seconds_bucket{') &&
        k.includes('route="/v1/describe",method="POST",status="200"'),
    );
    assert.ok(buckets.length >= 10);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1]);
    assert.equal(buckets.at(-1)![0].includes('le="+Inf"'), true);
    assert.equal(buckets.at(-1)![1], 2);
    assert.equal(get('vggface_images_described_total{faces="all"}'), 3);
    assert.equal(get('vggface_images_described_total{faces="largest"}'), 2);
    assert.equal(get('vggface_faces_described_total'), faces + 2);
    assert.equal(get('vggface_inference_batch_size_sum'), faces + 2);
    assert.ok(get('vggface_inference_batch_size_count') >= Math.ceil((faces + 2) / 8));
    assert.ok(get('vggface_inference_duration_seconds_sum') > 0);
    assert.equal(get('vggface_queue_depth'), 0);
    assert.equal(get('vggface_inflight_images'), 0);
    assert.ok(samples.has('nodejs_eventloop_lag_seconds'));
  },
);

test('serve: a full queue answers 503 with Retry-After at once; requests past --timeout answer 503', async (t) => {
  const cacheDir = tempDir(t);
  // A worker holds 2 x --batch images: one 2-photo request; two more may wait; the rest are refused.
  const server = await startServe(t, { cacheDir, args: ['--auth', 'none', '--batch', '1', '--queue', '2'] });
  const photos = [photo('selfie-many-people.jpg'), photo('img54.jpg')];
  const answers = await Promise.all(
    Array.from({ length: 12 }, () => call(`${server.url}/v1/describe`, 'POST', form(photos))),
  );
  const statuses = answers.map((a) => a.status).sort();
  assert.ok(
    statuses.every((s) => s === 200 || s === 503),
    statuses.join(','),
  );
  const refused = answers.filter((a) => a.status === 503);
  assert.ok(refused.length >= 6 && answers.length - refused.length >= 3, statuses.join(','));
  for (const r of refused) {
    assertError(r, 503, 'queue_full', /the server is busy/);
    assert.match(r.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
  }

  const slow = await startServe(t, { cacheDir, args: ['--auth', 'none', '--timeout', '0.001'] });
  const late = await call(`${slow.url}/v1/describe`, 'POST', form([photo('selfie-many-people.jpg')]));
  assertError(late, 503, 'timeout', /time limit/);
  assert.match(late.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
  // The server goes on serving.
  assert.equal((await call(`${slow.url}/healthz`, 'GET')).status, 200);
});

test(
  'serve: /healthz answers 200, with the load it sees, ' + 'ahead of the describe requests saturating the workers',
  async (t) => {
    const server = await startServe(t, { cacheDir: tempDir(t), args: ['--auth', 'none', '--queue', '64'] });
    const photos = ['selfie-many-people.jpg', 'couple.jpg', 'img54.jpg', 'img59.jpg'].map(photo);
    const REQUESTS = 24;
    let outstanding = REQUESTS;
    const load = Promise.all(
      Array.from({ length: REQUESTS }, () =>
        call<Json>(`${server.url}/v1/describe`, 'POST', form(photos)).finally(() => outstanding--),
      ),
    );
    // Ordering, not latency (the bench's serve section measures that, idle and saturated): once the workers are busy,
    // probes sent one after another all come back before the last of the describe requests sent ahead of them, which a
    // /healthz queued behind inference could not do.
    let first: Json | undefined;
    while (outstanding > 0 && first === undefined) {
      const h = await call<Json>(`${server.url}/healthz`, 'GET');
      if (h.body.queue.waiting > 0 || h.body.inflightImages > 0) first = h.body;
    }
    assert.ok(first, 'the describe requests were answered before any probe found the workers busy');
    const probes: { status: number; body: Json; outstanding: number }[] = [];
    for (let i = 0; i < 10; i++) {
      const h = await call<Json>(`${server.url}/healthz`, 'GET');
      probes.push({ status: h.status, body: h.body, outstanding });
    }
    const answers = await load;
    assert.deepEqual(
      answers.map((a) => [a.status, a.body.images.length]),
      Array.from({ length: REQUESTS }, () => [200, 4]),
    );
    // Under load as alone, every request finds the faces the library finds in these photos: 6, 2, 4 and 2.
    const faces = answers.map((a) => a.body.images.map((i: Json) => i.faces.length).join(','));
    assert.deepEqual(faces, Array(REQUESTS).fill('6,2,4,2'));
    for (const body of [first, ...probes.map((p) => p.body)]) {
      assert.deepEqual(
        [body.status, body.workers, body.queue.capacity, body.gallery],
        ['ok', { ready: 1, total: 1 }, 64, { backend: 'sqlite', state: 'ok' }],
      );
    }
    assert.ok(first.queue.waiting > 0 || first.inflightImages > 0, JSON.stringify(first));
    assert.deepEqual(
      probes.map((p) => p.status),
      Array(10).fill(200),
    );
    const late = probes.filter((p) => p.outstanding === 0).length;
    assert.equal(late, 0, `${late} of 10 probes came back after the last describe request`);
  },
);

test('serve: --auth all with a token file guards every route but / and /healthz; no token, no server', async (t) => {
  const dir = tempDir(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'file-token-abcdef\n');
  const server = await startServe(t, { cacheDir: tempDir(t), args: ['--auth', 'all', '--token-file', tokenFile] });
  const headers = { authorization: 'Bearer file-token-abcdef' };
  for (const path of ['/v1/gallery', '/metrics', '/openapi.json']) {
    assertError(await call(`${server.url}${path}`, 'GET'), 401, 'unauthorized');
    assert.equal((await call(`${server.url}${path}`, 'GET', undefined, headers)).status, 200, path);
  }
  assertError(await call(`${server.url}/v1/describe`, 'POST', form([photo('img1.jpg')])), 401, 'unauthorized');
  assert.equal((await call(`${server.url}/v1/describe`, 'POST', form([photo('img1.jpg')]), headers)).status, 200);
  assert.equal((await call(`${server.url}/healthz`, 'GET')).status, 200);
  assert.equal((await fetch(`${server.url}/`)).status, 200);
  const doc = (await call<Json>(`${server.url}/openapi.json`, 'GET', undefined, headers)).body;
  assert.deepEqual(doc.paths['/v1/describe'].post.security, [{ bearer: [] }]);
  assert.equal(doc.paths['/healthz'].get.security, undefined);

  const env = { VGGFACE_TOKEN: '', VGGFACE_DETECTOR_MODEL: YUNET_MODEL };
  const none = await runCli(['serve', '-w', TINY_CAFFEMODEL, '--port', '0'], { env });
  assert.equal(none.code, 2);
  assert.match(
    none.stderr,
    /--auth writes needs a token: set VGGFACE_TOKEN or pass --token-file FILE \(or --auth none/,
  );
  writeFileSync(tokenFile, '\n');
  const empty = await runCli(['serve', '-w', TINY_CAFFEMODEL, '--port', '0', '--token-file', tokenFile], { env });
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /the token file is empty/);
  const bad = await runCli(['serve', '-w', TINY_CAFFEMODEL, '--auth', 'some', '--max-body', 'huge'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--auth/);
  const help = await runCli(['serve', '--help']);
  for (const flag of [
    '--port',
    '--host',
    '--workers',
    '--batch',
    '--queue',
    '--max-body',
    '--max-images',
    '--max-pixels',
    '--timeout',
    '--auth',
    '--token-file',
    '--db',
    '--threshold',
    '--weights',
  ]) {
    assert.ok(help.stdout.includes(flag), `serve --help lacks ${flag}`);
  }
});

test('serve: SIGTERM finishes the requests in flight, closes the workers and the gallery, exits 0', async (t) => {
  const server = await startServe(t, { cacheDir: tempDir(t), env: { VGGFACE_TOKEN: TOKEN } });
  // A gallery with a face, so the store has a file open (WAL) that closing must checkpoint and remove.
  assert.equal(
    (await call(`${server.url}/v1/gallery/alice/faces`, 'POST', form([photo('img1.jpg')]), auth)).status,
    200,
  );
  assert.ok(existsSync(`${server.db}-wal`));
  const photos = ['selfie-many-people.jpg', 'couple.jpg', 'img54.jpg', 'img59.jpg'].map(photo);
  const inFlight = [
    call(`${server.url}/v1/describe`, 'POST', form(photos)),
    call(`${server.url}/v1/verify`, 'POST', form([photo('img1.jpg'), photo('img2.jpg')]), auth),
  ];
  for (let i = 0; i < 200; i++) {
    const h = await call<Json>(`${server.url}/healthz`, 'GET');
    if (h.body.inflightImages > 0) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  server.child.kill('SIGTERM');
  const [described, verified] = await Promise.all(inFlight);
  assert.equal(described.status, 200);
  assert.equal((described.body as Json).images.length, 4);
  // verify needs a threshold the server does not have: answered, with its error, not dropped.
  assertError(verified, 422, 'no_threshold');
  const { code, signal } = await server.exited;
  assert.deepEqual([code, signal], [0, null], server.stderr());
  assert.match(server.stderr(), /SIGTERM: finishing the requests in flight\n[\s\S]*stopped\n$/);
  assert.ok(!existsSync(`${server.db}-wal`), 'the gallery store was closed');
  await assert.rejects(fetch(`${server.url}/healthz`), /fetch failed/);
});
