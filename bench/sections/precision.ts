/**
 * Issue 5: fp32, fp16 and int8 models of the full-size network (random weights of the real dimensions) side by side:
 * file size, conversion, images/s at batch 1 and 8 (library and raw ONNX Runtime), peak RSS, and fidelity to fp32
 * on the real photos of ../shared/data/faces (full-size and tiny golden networks).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { int8CpuKind, mb, ROOT, runTask, WORK_DIR, type ChildResult, type Section } from '../harness.js';
import { ensureFullCaffemodel } from '../fixtures.js';
import { mixedJpegs } from '../photos.js';

interface Rate {
  ours: number;
  raw: number;
  ratio: number;
}
interface Throughput {
  batch1: Rate;
  batch8: Rate;
  /** Whether the library chose ONNX Runtime's exact int8 kernels (the raw session then uses them too). */
  exactKernels: boolean;
}
interface Converted {
  ms: number;
  bytes: number;
  calibration?: { method: string; source: string; sha256: string; images: number };
}
interface FidelityRow {
  cosine: { min: number; median: number; mean: number };
  centredCosine: { min: number; median: number };
  pairs: number;
  changed: number;
  maxDistanceChange: number;
}
type Fidelity = {
  images: number;
  threshold: number;
  referencePairDistance: { min: number; median: number; max: number };
} & Record<string, FidelityRow>;

const SHARED = join(ROOT, '..', 'shared');
const FACES = join(SHARED, 'data', 'faces');
const TINY = join(SHARED, 'golden', 'tiny', 'VGG_FACE.caffemodel');
const PRECISIONS = ['fp32', 'fp16', 'int8'] as const;
const FIDELITY_ROWS = ['fp16', 'int8', 'int8-full', 'int8-full-default'] as const;

const TITLE = 'Precision: fp32, fp16 and int8 models (speed, memory, size, fidelity)';

export const precisionSection: Section = {
  name: 'precision',
  title: TITLE,
  // int8 speed depends on the CPU's kernels: one record per CPU kind, so each kind's figures stay beside the others.
  record: () => ({ name: `precision-${int8CpuKind().id}`, title: `${TITLE}, ${int8CpuKind().label}` }),
  async run(ctx) {
    const kind = int8CpuKind();
    const caffemodel = await ensureFullCaffemodel();
    const dir = mkdtempSync(join(WORK_DIR, 'precision-'));
    const faces = readdirSync(FACES)
      .filter((f) => /\.(jpe?g|png)$/i.test(f))
      .sort()
      .map((f) => join(FACES, f));
    try {
      const converted: Record<string, ChildResult<Converted>> = {};
      const model = (p: string) => join(dir, `${p}.onnx`);
      for (const p of PRECISIONS) {
        ctx.log(`convert ${p}`);
        converted[p] = await runTask<Converted>('convert', { source: caffemodel, output: model(p), precision: p });
      }
      ctx.log('convert int8 with -127..127 weights (builder 1, for comparison)');
      converted['int8-full'] = await runTask<Converted>('convert', {
        source: caffemodel,
        output: model('int8-full'),
        precision: 'int8',
        weightLimit: 127,
      });
      ctx.log('fp16 computed in fp16 (for comparison, not shipped)');
      await runTask('fp16-compute', { source: caffemodel, output: model('fp16-compute') });

      const variants = [...PRECISIONS, 'int8-full', 'fp16-compute'] as const;
      const speed: Record<string, ChildResult<Throughput>> = {};
      const run: Record<string, ChildResult<{ loadMs: number }>> = {};
      for (const p of variants) {
        ctx.log(`throughput ${p}`);
        speed[p] = await runTask<Throughput>('throughput', {
          model: model(p),
          batches: [1, 8],
          rounds: ctx.quick ? 1 : 5,
          imagesPerRound: ctx.quick ? 8 : 32,
        });
        if (p === 'int8-full') continue;
        ctx.log(`peak RSS ${p}`);
        run[p] = await runTask<{ loadMs: number }>('run-model', { model: model(p), images: 16 });
      }

      const jpegs = await mixedJpegs(ctx.quick ? 40 : 200);
      const e2e: Record<string, ChildResult<{ e2e: number; modelOnly: number; ratio: number }>> = {};
      for (const p of ['fp32', 'int8']) {
        ctx.log(`end to end ${p} over ${jpegs.length} JPEGs`);
        e2e[p] = await runTask('e2e', { model: model(p), photos: jpegs, rounds: ctx.quick ? 1 : 3, batch: 8 });
      }

      ctx.log(`fidelity on ${faces.length} photos (full-size)`);
      // int8-full: as vggface runs it here (exact kernels where the CPU saturates); int8-full-default: always the
      // default kernels, i.e. what builder 1's models computed on this CPU.
      const fidelityOf = (m: (p: string) => string) =>
        runTask<Fidelity>('fidelity', {
          reference: m('fp32'),
          candidates: {
            fp16: m('fp16'),
            int8: m('int8'),
            'int8-full': m('int8-full'),
            'int8-full-default': m('int8-full'),
          },
          defaultKernels: ['int8-full-default'],
          images: faces,
        });
      const full = await fidelityOf(model);
      ctx.log('fidelity (tiny golden network)');
      const tiny = (p: string) => join(dir, `tiny-${p}.onnx`);
      for (const p of PRECISIONS) await runTask('convert', { source: TINY, output: tiny(p), precision: p });
      await runTask('convert', { source: TINY, output: tiny('int8-full'), precision: 'int8', weightLimit: 127 });
      const small = await fidelityOf(tiny);

      const fp32b8 = speed.fp32.result.batch8.ours;
      const label: Record<string, string> = {
        fp32: 'fp32',
        fp16: 'fp16 (float16 weights, computed in fp32: the shipped fp16)',
        'fp16-compute': 'fp16 computed in fp16 (not shipped)',
        int8: 'int8 (QDQ, weights -64..64, calibrated on the built-in set)',
        'int8-full': `int8 with -127..127 weights (builder 1), ${
          speed['int8-full'].result.exactKernels
            ? "ONNX Runtime's exact U8U8 kernels (as vggface runs it here)"
            : 'default kernels'
        }`,
      };
      const speedRow = (p: string) => {
        const s = speed[p].result;
        const c = converted[p]?.result;
        const conv = c ? `${(c.ms / 1000).toFixed(1)} s, ${mb(converted[p].maxRss)}` : '';
        return (
          `| ${label[p]} | ${c ? mb(c.bytes) : ''} | ${conv} | ${s.batch1.ours.toFixed(2)} ` +
          `/ ${s.batch1.raw.toFixed(2)} | ${s.batch8.ours.toFixed(2)} / ${s.batch8.raw.toFixed(2)} ` +
          `| ${(s.batch8.ours / fp32b8).toFixed(2)}x | ${run[p] ? mb(run[p].maxRss) : ''} |`
        );
      };
      const f = (x: number) => x.toFixed(5);
      const fidelityRow = (net: string, fid: Fidelity, p: string) => {
        const r = fid[p];
        return (
          `| ${net} | ${p} | ${f(r.cosine.min)} | ${f(r.cosine.median)} | ${f(r.centredCosine.min)} ` +
          `/ ${f(r.centredCosine.median)} | ${r.changed} of ${r.pairs} | ${r.maxDistanceChange.toFixed(4)} |`
        );
      };
      const cal = converted.int8.result.calibration!;
      const i8 = full.result.int8;
      return [
        'Weights: random, real dimensions (145,002,878 parameters). int8 ' +
          `calibration: ${cal.method} on the ${cal.source}.`,
        '',
        'Images/s on decoded 224x224 RGB, library `describe` / raw onnxruntime-node ' +
          'session on the same file (medians of interleaved rounds);',
        'peak RSS of a process that loads the model and describes 16 images at batch 8:',
        '',
        '| model | file | convert: time, peak RSS | img/s batch 1 | img/s batch 8 | batch 8 vs fp32 | peak RSS |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...variants.map(speedRow),
        '',
        `CPU kind: ${kind.label}. ONNX Runtime's default x86 int8 kernels ${
          kind.vnni
            ? 'sum u8 x s8 products in int32 (VNNI): exact for any weights'
            : 'add pairs of u8 x s8 products into a saturating int16 (`vpmaddubsw`, no VNNI): ' +
              'weights beyond -64..64 can clip'
        }.`,
        '',
        'End to end: `describe` (crops as given, `--detector none`) ' +
          `over ${jpegs.length} JPEG photos of mixed sizes (longer side 160-2048 px),`,
        'decoding and resizing the next batch on the libuv pool while the ' +
          'current one runs, beside the model-only rate on as many',
        'decoded 224x224 images (same process, interleaved rounds, medians, batch 8):',
        '',
        '| model | end-to-end img/s | model-only img/s | ratio (target ≥ 0.9) | peak RSS |',
        '| --- | --- | --- | --- | --- |',
        ...['fp32', 'int8'].map(
          (p) =>
            `| ${p} | ${e2e[p].result.e2e.toFixed(2)} | ${e2e[p].result.modelOnly.toFixed(2)} ` +
            `| ${e2e[p].result.ratio.toFixed(3)} | ${mb(e2e[p].maxRss)} |`,
        ),
        '',
        `Fidelity to fp32 on the ${faces.length} photos of ../shared/data/faces ` +
          '(none used for calibration). "centred": cosine after',
        'subtracting the mean fp32 descriptor, i.e. on the part that tells images ' +
          'apart. Decisions: same/different over all pairs at',
        'the median fp32 pair distance (the densest, most fragile point; ' +
          'random weights have no real same-person threshold):',
        `full-size ${full.result.threshold.toFixed(4)} (fp32 pair ` +
          `distances ${full.result.referencePairDistance.min.toFixed(3)}-` +
          `${full.result.referencePairDistance.max.toFixed(3)}),`,
        `tiny ${small.result.threshold.toFixed(4)} ` +
          `(${small.result.referencePairDistance.min.toFixed(3)}-` +
          `${small.result.referencePairDistance.max.toFixed(3)}).`,
        '',
        '| network | model | cosine min | cosine median | centred cosine min / ' +
          'median | decisions changed | max pair distance change |',
        '| --- | --- | --- | --- | --- | --- | --- |',
        ...FIDELITY_ROWS.map((p) => fidelityRow('full-size', full.result, p)),
        ...FIDELITY_ROWS.map((p) => fidelityRow('tiny golden', small.result, p)),
        '',
        '"int8-full": builder 1\'s -127..127 weights as vggface runs them here ' +
          "(ONNX Runtime's exact kernels where the CPU saturates);",
        '"int8-full-default": the same model on the default kernels, i.e. what builder 1 computed on this CPU kind.',
        '',
        '| target | measured |',
        '| --- | --- |',
        `| int8 ≥ ${kind.vnni ? '3' : '1.6'}x fp32 images/s at batch 8 ` +
          `(${kind.vnni ? 'with' : 'without'} VNNI) | ${(speed.int8.result.batch8.ours / fp32b8).toFixed(2)}x |`,
        `| int8 median cosine to fp32 ≥ 0.999 (full-size) | ${f(i8.cosine.median)} ` +
          `full-size, ${f(small.result.int8.cosine.median)} tiny |`,
        `| int8 minimum cosine to fp32 ≥ 0.998 (full-size) | ${f(i8.cosine.min)} ` +
          `full-size, ${f(small.result.int8.cosine.min)} tiny |`,
        `| int8 peak RSS ≤ 600 MB | ${mb(run.int8.maxRss)} |`,
        `| int8 file about 140 MB | ${mb(converted.int8.result.bytes)} |`,
        '| end-to-end ≥ 0.9 of the model-only rate | ' +
          `fp32 ${e2e.fp32.result.ratio.toFixed(3)}, int8 ${e2e.int8.result.ratio.toFixed(3)} |`,
      ].join('\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
