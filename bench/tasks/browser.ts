/**
 * vggface/browser in headless Chromium (Debian's /usr/bin/chromium, playwright-core): the model served by the
 * server's own static routes (src/server/static.ts, cross-origin isolated so WebAssembly threads are on), then
 * - time from navigation to the first descriptor, cold (empty profile) and cached (reload: the model from Cache
 *   Storage, onnxruntime-web's files revalidated by ETag);
 * - images/s of `describe` on decoded 224x224 RGB, the same images as the throughput task, rounds after a warm-up;
 * - peak memory: the summed RSS of Chromium's processes, sampled every 100 ms (shared pages counted in each).
 */
import { CHROMIUM, CHROMIUM_ARGS } from '../../test/fixtures/chromium.js';
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname } from 'node:path';
import Fastify from 'fastify';
import { chromium } from 'playwright-core';
import { ISOLATION_HEADERS, registerStaticRoutes } from '../../src/server/static.js';
import { finishTask, median, taskArgs } from '../harness.js';

const {
  model,
  batches,
  rounds,
  imagesPerRound,
  threads = availableParallelism(),
} = taskArgs<{ model: string; batches: number[]; rounds: number; imagesPerRound: number; threads?: number }>();

// The page starts loading the model as soon as it runs: navigation to first descriptor is what a user waits.
const PAGE = `<!doctype html><meta charset="utf-8"><title>vggface browser bench</title><script type="module">
import { VggFace } from '/vggface/browser/vggface.js';
const S = 224 * 224 * 3;
const image = (i) => {
  const data = new Uint8Array(S);
  for (let k = 0; k < S; k++) data[k] = (k * 31 + i * 17) & 255;
  return { data, width: 224, height: 224 };
};
window.ready = (async () => {
  const model = await VggFace.load({
    model: '/models/${encodeURIComponent(basename(model))}',
    threads: ${threads},
    cache: 'vggface-bench',
  });
  await model.describe(image(0));
  const firstMs = performance.now();
  window.model = model;
  window.images = (n) => Array.from({ length: n }, (_, i) => image(i));
  return { firstMs, backend: model.backend, threads: model.threads, isolated: self.crossOriginIsolated };
})();
</script>`;

const app = Fastify();
registerStaticRoutes(app, { modelsDir: realpathSync(dirname(model)) });
app.get('/bench', async (_request, reply) => {
  void reply.type('text/html; charset=utf-8').headers(ISOLATION_HEADERS);
  return PAGE;
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [...CHROMIUM_ARGS],
});

/** The summed RSS of a process's descendants: here Chromium's browser, renderer, GPU and utility processes. */
function treeRss(root: number): number {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  let total = 0;
  for (const pid of parent.keys()) {
    if (pid === root) continue;
    let p: number | undefined = pid;
    while (p !== undefined && p !== root && p > 1) p = parent.get(p);
    if (p !== root) continue;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {}
  }
  return total;
}
// Chromium is this process's only child.
let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, treeRss(process.pid))), 100);

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  type Ready = { firstMs: number; backend: string; threads: number; isolated: boolean };
  const ready = () => page.evaluate(() => (window as unknown as { ready: Promise<Ready> }).ready) as Promise<Ready>;
  await page.goto(`${base}/bench`);
  const cold = await ready().catch((err: Error) => Promise.reject(new Error(`${err.message} ${errors.join('; ')}`)));
  await page.reload();
  const cached = await ready();
  const rates: Record<string, { median: number; rounds: number[] }> = {};
  for (const batch of batches) {
    const perRound = await page.evaluate(
      async ({ batch, rounds, n }) => {
        const w = window as unknown as {
          model: { describe(i: unknown[], o: object): Promise<unknown> };
          images(n: number): unknown[];
        };
        const images = w.images(n);
        await w.model.describe(images, { batchSize: batch }); // warm-up
        const out: number[] = [];
        for (let r = 0; r < rounds; r++) {
          const t = performance.now();
          await w.model.describe(images, { batchSize: batch });
          out.push((n / (performance.now() - t)) * 1000);
        }
        return out;
      },
      { batch, rounds, n: imagesPerRound },
    );
    rates[`batch${batch}`] = { median: median(perRound), rounds: perRound };
  }
  await context.close();
  finishTask({
    coldFirstMs: cold.firstMs,
    cachedFirstMs: cached.firstMs,
    backend: cold.backend,
    threads: cold.threads,
    isolated: cold.isolated,
    rates,
    peakRss,
  });
} finally {
  clearInterval(sampler);
  await browser.close();
  await app.close();
}
