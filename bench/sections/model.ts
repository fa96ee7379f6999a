/** Issue 2: full-size model, cold and cached load, throughput against raw ONNX Runtime, peak RSS. */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { mb, runTask, WORK_DIR, type Section } from '../harness.js';
import { ensureFullCaffemodel } from '../fixtures.js';

type Throughput = Record<string, { ours: number; raw: number; ratio: number }>;

export const modelSection: Section = {
  name: 'model',
  title: 'Full-size model: load, throughput, memory (fp32)',
  async run(ctx) {
    const caffemodel = await ensureFullCaffemodel();
    const cacheDir = mkdtempSync(join(WORK_DIR, 'cache-'));
    try {
      ctx.log('cold load (conversion)');
      const cold = await runTask<{ ms: number; origin: string; modelPath: string }>('load', {
        weights: caffemodel,
        cacheDir,
      });
      ctx.log('cached load');
      const warm = await runTask<{ ms: number; origin: string }>('load', { weights: caffemodel, cacheDir });
      ctx.log('throughput');
      const tp = await runTask<Throughput>('throughput', {
        model: cold.result.modelPath,
        batches: [1, 8],
        rounds: ctx.quick ? 1 : 5,
        imagesPerRound: ctx.quick ? 8 : 32,
      });
      const size = statSync(caffemodel).size;
      const onnxSize = statSync(cold.result.modelPath).size;
      const row = (b: string) => {
        const r = tp.result[b];
        return `| ${b.replace('batch', '')} | ${r.ours.toFixed(2)} | ${r.raw.toFixed(2)} | ${r.ratio.toFixed(3)} |`;
      };
      return [
        'Weights: random, real dimensions (145,002,878 parameters); ' +
          `caffemodel ${mb(size)}, converted ONNX ${mb(onnxSize)}.`,
        '',
        '| measurement | value | target |',
        '| --- | --- | --- |',
        '| cold load: hash + read + validate + convert + write ONNX + open session ' +
          `| ${(cold.result.ms / 1000).toFixed(2)} s | ≤ 10 s |`,
        `| cold load peak RSS | ${mb(cold.maxRss)} | ≤ 1.6 GB |`,
        `| cached load: hash + open session (${warm.result.origin}) ` +
          `| ${(warm.result.ms / 1000).toFixed(2)} s | ≤ 3 s |`,
        `| cached load peak RSS | ${mb(warm.maxRss)} | |`,
        `| throughput process peak RSS (library + raw session, both loaded) | ${mb(tp.maxRss)} | |`,
        '',
        'Images/s on decoded 224x224 RGB (library `describe` vs a raw onnxruntime-node session ' +
          'on the same ONNX file, same process, interleaved rounds, medians):',
        '',
        '| batch | vggface img/s | raw ORT img/s | ratio | ',
        '| --- | --- | --- | --- |',
        row('batch1'),
        row('batch8'),
      ].join('\n');
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  },
};
