// @tags: browser
/**
 * The web page in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core): verify two
 * photos, add photos to the gallery (the token refused, then given), search, remove; every number the page shows
 * is checked against the API's answer for the same photos.
 */
import { CHROMIUM, CHROMIUM_ARGS, requireChromium } from './fixtures/chromium.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { tempDir } from './helpers.js';
import { YUNET_MODEL } from './fixtures/faces.js';
import { call, form, photo, startServe } from './fixtures/serve.js';

process.env.VGGFACE_DETECTOR_MODEL = YUNET_MODEL;

const TOKEN = 'browser-token-0123456789';
const fmt = (x: number) => x.toFixed(4);

// biome-ignore lint/suspicious/noExplicitAny: JSON answers of any shape, checked field by field
type Json = Record<string, any>;

test('web page in headless Chromium: verify two photos, add to the gallery, search, remove', async (t) => {
  requireChromium();
  const server = await startServe(t, {
    cacheDir: tempDir(t),
    env: { VGGFACE_TOKEN: TOKEN },
    args: ['--threshold', '0.05'],
  });
  // Not a tempDir: its removal, registered first, would run while Chromium may still write the profile.
  const profile = mkdtempSync(join(tmpdir(), 'vggface-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS],
  });
  t.after(async () => {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  // The page's own photos are blob: URLs of this origin; anything else must come from the server.
  page.on(
    'request',
    (r) =>
      !r.url().startsWith(server.url) &&
      !r.url().startsWith(`blob:${server.url}/`) &&
      problems.push(`request outside the server: ${r.url()}`),
  );
  await page.goto(`${server.url}/`);
  assert.equal(await page.title(), 'vggface');

  // Verify: the verdict and numbers are the API's, and each photo shows the box of the face used.
  await page.setInputFiles('#verify-a', photo('img1.jpg'));
  await page.setInputFiles('#verify-b', photo('couple.jpg'));
  await page.waitForSelector('#verdict .verdict');
  const verified = (await call<Json>(`${server.url}/v1/verify`, 'POST', form([photo('img1.jpg'), photo('couple.jpg')])))
    .body;
  assert.equal(await page.textContent('#verdict .verdict'), verified.verified ? 'Same person' : 'Different people');
  assert.equal(
    await page.textContent('#verdict .numbers'),
    `cosine distance ${fmt(verified.distance)} ${verified.verified ? '≤' : '>'} threshold ${fmt(verified.threshold)}`,
  );
  const boxes = await page.$$eval('#verify .photo', (figures) =>
    figures.map((f) => {
      const img = f.querySelector('img')!.getBoundingClientRect();
      const boxes = [...f.querySelectorAll('.face-box')].map((b) => b.getBoundingClientRect());
      return {
        img: { x: img.x, y: img.y, width: img.width, height: img.height },
        boxes: boxes.map((b) => ({ x: b.x, y: b.y, width: b.width, height: b.height })),
      };
    }),
  );
  assert.equal(boxes.length, 2);
  boxes.forEach(({ img, boxes: drawn }, i) => {
    assert.equal(drawn.length, 1, `photo ${i + 1}: one face box`);
    const used = verified.images[i];
    const scale = img.width / used.width;
    assert.ok(Math.abs(img.height / used.height - scale) < 0.01, 'the photo is shown upright, unstretched');
    assert.ok(Math.abs(drawn[0].x - img.x - used.face.box.x * scale) < 1.5, `photo ${i + 1}: box x`);
    assert.ok(Math.abs(drawn[0].y - img.y - used.face.box.y * scale) < 1.5, `photo ${i + 1}: box y`);
    assert.ok(Math.abs(drawn[0].width - used.face.box.width * scale) < 1.5, `photo ${i + 1}: box width`);
  });

  // Gallery: without the token the server refuses and the page says why; with it, the photos are added.
  await page.fill('#gallery-id', 'Alice');
  await page.setInputFiles('#gallery-files', [photo('img1.jpg'), photo('img2.jpg')]);
  await page.click('#gallery-add');
  await page.waitForSelector('#gallery-result .error');
  assert.match((await page.textContent('#gallery-result'))!, /needs the server token/);
  await page.fill('#token', TOKEN);
  await page.click('#gallery-add');
  await page.waitForSelector('#gallery-result [data-added="2"]');
  await page.waitForSelector('#identities li[data-identity="Alice"]');
  await page.fill('#gallery-id', 'Bob');
  await page.setInputFiles('#gallery-files', [photo('img3.jpg')]);
  await page.click('#gallery-add');
  await page.waitForSelector('#identities li[data-identity="Bob"]');
  assert.deepEqual(await page.$$eval('#identities li', (items) => items.map((li) => li.textContent)), [
    'Alice2 photosremove',
    'Bob1 photoremove',
  ]);

  // Search: the matches and their distances, in the API's order.
  await page.setInputFiles('#search-file', photo('img4.jpg'));
  await page.waitForSelector('#search-result .verdict');
  const searched = (await call<Json>(`${server.url}/v1/search`, 'POST', form([photo('img4.jpg')]))).body.results[0];
  const rows = await page.$$eval('#search-result tbody tr', (trs) =>
    trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
  );
  assert.deepEqual(
    rows,
    searched.matches.map((m: Json) => [m.identity, fmt(m.distance), m.verified ? 'match' : '', m.source]),
  );
  assert.equal(await page.getAttribute('#search-result .verdict', 'data-identity'), searched.identity);
  assert.equal(await page.locator('#search .face-box').count(), 1);

  // Remove Bob with his button.
  await page.click('#identities li[data-identity="Bob"] button');
  await page.waitForSelector('#identities li[data-identity="Bob"]', { state: 'detached' });
  assert.deepEqual((await call<Json>(`${server.url}/v1/gallery`, 'GET')).body, {
    identities: [{ identity: 'Alice', faces: 2 }],
  });

  assert.deepEqual(
    problems.filter((p) => !/401/.test(p)),
    [],
    'no script errors, nothing loaded from elsewhere',
  );
});
