import { threadsOption } from '../face-options.js';
import { Command } from 'commander';
import { VggFace } from '../../vggface.js';
import { compareDescriptors, type FidelityReport } from '../../verify/fidelity.js';
import { METRICS, type Metric } from '../../distance/distance.js';
import * as check from '../../validate.js';
import { usageError, type VggFaceError } from '../../errors.js';
import { addImageOptions, flagArgs, imageOptions, resolveFlag } from '../options.js';
import { DESCRIBE_OPTIONS } from '../../options.js';
import { progressBar } from '../progress.js';
import { reportItemError, type CommandContext } from '../context.js';

interface FidelityFlags {
  reference?: string;
  candidate?: string;
  threshold?: string;
  metric: string;
  batch?: string;
  threads?: string;
  cacheDir?: string;
  fit?: string;
  maxPixels?: string;
  json?: boolean;
}

export function fidelityCommand(ctx: CommandContext): Command {
  const cmd = new Command('fidelity')
    .summary('compare two models on the same images: descriptor cosine, and verification decisions that change')
    .description(
      'Describes every image with both models and reports, for each image, ' +
        'the cosine similarity of its two descriptors ' +
        '(1 = identical), their minimum, median and mean; over all pairs of ' +
        'images, how far the pair distances move; and, ' +
        'with --threshold, how many same/different decisions (distance <= threshold: the same person) change. ' +
        'Images that cannot be read are reported on stderr and left out; the exit code is then 1.\n\n' +
        'Example: vggface fidelity --reference fp32.onnx --candidate int8.onnx --threshold 0.4 faces/*.jpg',
    )
    .argument('<images...>', 'image files (at least one; two or more for pair decisions)')
    .requiredOption('--reference <model>', 'the reference model (a converted .onnx, or weights in any layout)')
    .requiredOption('--candidate <model>', 'the model to check against it')
    .option('--threshold <t>', 'decision threshold on the pair distance; without it, decisions are not counted')
    .option('--metric <metric>', `pair distance, as verify measures it: ${METRICS.join(', ')}`, 'cosine')
    .option(...flagArgs(DESCRIBE_OPTIONS.batchSize))
    .option('--threads <n>', 'ONNX Runtime threads (default: number of cores)')
    .option('--cache-dir <dir>', 'cache for converted models (default: $VGGFACE_CACHE or ~/.cache/vggface)')
    .option('--json', 'print one JSON object with every image and every changed pair');
  addImageOptions(cmd);
  return cmd.action(async (images: string[], flags: FidelityFlags) => {
    if (!flags.reference || !flags.candidate) throw usageError('--reference and --candidate are required');
    const metric = check.oneOf('--metric', flags.metric, METRICS) as Metric;
    // Both distances of unit vectors lie in [0, 2].
    const threshold = flags.threshold === undefined ? undefined : check.number('--threshold', flags.threshold, 0, 2);
    const batchSize = resolveFlag(DESCRIBE_OPTIONS.batchSize, flags.batch);
    const threads = threadsOption(flags);
    const image = imageOptions(flags);

    // One model at a time, so only one is in memory.
    const describeAll = async (weights: string, label: string) => {
      const model = await VggFace.load({ weights, threads, cacheDir: flags.cacheDir });
      const out = new Map<number, Float32Array>();
      const failed = new Map<number, VggFaceError>();
      const bar = progressBar(`Describing (${label})`, images.length, { threshold: 16 });
      try {
        for await (const r of model.describeEach(images, { batchSize, ...image, onProgress: (d) => bar.update(d) })) {
          if (r.error) failed.set(r.index, r.error);
          else out.set(r.index, r.descriptor);
        }
      } finally {
        bar.stop();
        await model.close();
      }
      return { descriptors: out, failed, precision: model.info.precision };
    };
    const ref = await describeAll(flags.reference, 'reference');
    const cand = await describeAll(flags.candidate, 'candidate');

    const kept: number[] = [];
    for (let i = 0; i < images.length; i++) {
      const err = ref.failed.get(i) ?? cand.failed.get(i);
      if (err !== undefined) reportItemError(ctx, err);
      else kept.push(i);
    }
    if (kept.length === 0) return;
    const report = compareDescriptors(
      kept.map((i) => images[i]),
      kept.map((i) => ref.descriptors.get(i)!),
      kept.map((i) => cand.descriptors.get(i)!),
      { metric, threshold },
    );
    const models = {
      reference: { model: flags.reference, precision: ref.precision },
      candidate: { model: flags.candidate, precision: cand.precision },
    };
    if (flags.json) {
      ctx.stdout.write(JSON.stringify({ ...models, ...report }) + '\n');
      return;
    }
    ctx.stdout.write(textReport(report, models));
  });
}

function textReport(
  r: FidelityReport,
  m: { reference: { model: string; precision: string }; candidate: { model: string; precision: string } },
): string {
  const worst = r.images.reduce((a, b) => (b.cosine < a.cosine ? b : a));
  const f = (x: number) => x.toFixed(6);
  const lines = [
    `reference:  ${m.reference.model} (${m.reference.precision})`,
    `candidate:  ${m.candidate.model} (${m.candidate.precision})`,
    `images:     ${r.images.length}`,
    `cosine similarity of the two descriptors: min ${f(r.cosine.min)} ` +
      `(${worst.image}), median ${f(r.cosine.median)}, mean ${f(r.cosine.mean)}`,
    `pairs:      ${r.pairs.total}; largest change of a ` +
      `pair's ${r.pairs.metric} distance ${f(r.pairs.maxDistanceChange)}`,
  ];
  const d = r.pairs.decisions;
  if (d) {
    lines.push(
      `decisions at ${r.pairs.metric} distance <= ${d.threshold}: ${d.changed} of ${r.pairs.total} pairs change ` +
        `(same person: ${d.sameReference} by the reference, ${d.sameCandidate} by the candidate)`,
    );
    for (const c of d.changes.slice(0, 20))
      lines.push(`  ${c.a}  ${c.b}: ${f(c.referenceDistance)} -> ${f(c.candidateDistance)}`);
    if (d.changes.length > 20) lines.push(`  ... ${d.changes.length - 20} more (all with --json)`);
  }
  return lines.join('\n') + '\n';
}
