/**
 * Issue 14: vggface/browser in headless Chromium (WebAssembly, threads, cross-origin isolated as `vggface serve`
 * serves it) against onnxruntime-node on the same ONNX file in the same run: images/s at batch 1 and 8, time from
 * navigation to the first descriptor (cold and cached), peak memory. Full-size int8 and fp32 models of random weights;
 * --quick uses the tiny golden network instead (a smoke check of the section, not figures for the record).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { mb, ROOT, runTask, WORK_DIR, type Section } from '../harness.js';
import { ensureFullCaffemodel } from '../fixtures.js';

/** MiB, or kB for the tiny network's files. */
const size = (bytes: number) => (bytes < 10 * 1024 ** 2 ? `${(bytes / 1024).toFixed(0)} kB` : mb(bytes));
const TINY = join(ROOT, '..', 'shared', 'golden', 'tiny', 'VGG_FACE.caffemodel');

interface Rate {
  ours: number;
  raw: number;
}
interface NodeThroughput {
  batch1: Rate;
  batch8: Rate;
}
interface BrowserResult {
  coldFirstMs: number;
  cachedFirstMs: number;
  backend: string;
  threads: number;
  isolated: boolean;
  rates: Record<string, { median: number }>;
  peakRss: number;
}

export const browserSection: Section = {
  name: 'browser',
  title: 'In the browser: vggface/browser in headless Chromium (WebAssembly, threads) against onnxruntime-node',
  async run(ctx) {
    const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-browser.mjs'), '--quiet'], {
      encoding: 'utf8',
    });
    if (built.status !== 0) throw new Error(`build-browser failed: ${built.stderr}`);
    const source = ctx.quick ? TINY : await ensureFullCaffemodel();
    const dir = mkdtempSync(join(WORK_DIR, 'browser-'));
    const rounds = ctx.quick ? 1 : 5;
    const imagesPerRound = ctx.quick ? 8 : 32;
    const threads = availableParallelism();
    try {
      const rows: string[] = [];
      for (const precision of ['int8', 'fp32'] as const) {
        const model = join(dir, `vgg_face_${precision}.onnx`);
        ctx.log(`convert ${precision}`);
        await runTask('convert', { source, output: model, precision });
        ctx.log(`onnxruntime-node ${precision}`);
        const node = await runTask<NodeThroughput>('throughput', { model, batches: [1, 8], rounds, imagesPerRound });
        ctx.log(`Chromium ${precision}`);
        const web = await runTask<BrowserResult>('browser', {
          model,
          batches: [1, 8],
          rounds,
          imagesPerRound,
          threads,
        });
        const w = web.result;
        if (!w.isolated) throw new Error('the bench page was not cross-origin isolated: no WebAssembly threads');
        const n = node.result;
        const rate = (b: 1 | 8) => {
          const chromium = w.rates[`batch${b}`].median;
          return (
            `${chromium.toFixed(2)} / ${n[`batch${b}`].raw.toFixed(2)} ` +
            `/ ${n[`batch${b}`].ours.toFixed(2)} (${(chromium / n[`batch${b}`].raw).toFixed(2)}x)`
          );
        };
        rows.push(
          `| ${precision} (${size(statSync(model).size)}) | ${w.backend}, ${w.threads} threads ` +
            `| ${rate(1)} | ${rate(8)} | ${(w.coldFirstMs / 1000).toFixed(2)} s ` +
            `| ${(w.cachedFirstMs / 1000).toFixed(2)} s | ${mb(w.peakRss)} |`,
        );
      }
      return [
        `Model: ${
          ctx.quick ? 'the tiny golden network (quick run)' : 'full size, random weights of the real dimensions'
        }, converted to int8 and fp32. ` +
          `Chromium ${'`/usr/bin/chromium`'} headless, the page cross-origin isolated, onnxruntime-web's ` +
          `WebAssembly backend (SIMD, ${threads} threads asked for) in the library's Web Worker; ` +
          `onnxruntime-node on the same file with ${threads} threads. Images/s of \`describe\` on the same decoded ` +
          `224x224 RGB images, ${imagesPerRound} per round, median of ${rounds} round(s) after a warm-up. ` +
          'First descriptor: from navigation start until the first `describe` returns (library, onnxruntime-web, ' +
          'model download and session); cached: after a reload, the model from Cache Storage. ' +
          "Peak memory: the summed RSS of Chromium's processes (shared pages counted in each, so an upper bound).",
        '',
        '| model | Chromium runs on | img/s batch 1: Chromium / raw onnxruntime-node / vggface in Node (Chromium vs ' +
          'raw) | img/s batch 8 | navigation to first descriptor, cold | cached | Chromium peak RSS |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...rows,
      ].join('\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
