import { Command } from 'commander';
import { dirname } from 'node:path';
import { METRICS, type Metric } from '../../distance/distance.js';
import type { EvaluationReport } from '../../distance/lfw-protocol.js';
import { writeRocPlot } from '../../distance/roc-plot.js';
import { evaluateMetric, measurePairs, type PairDistances, type SkippedPair } from '../../verify/evaluate.js';
import { readPairList, type PairList } from '../../verify/pairs.js';
import { checkOutputPath } from '../../util/files.js';
import { envValue } from '../../util/env.js';
import * as check from '../../validate.js';
import type { CommandContext } from '../context.js';
import { addImageOptions, addModelOptions, flagArgs, imageOptions, resolveFlag, type ModelFlags } from '../options.js';
import { DESCRIBE_OPTIONS } from '../../options.js';
import { addFaceOptions, openPhotosAndModel, type FaceFlags } from '../face-options.js';
import { progressBar } from '../progress.js';

export interface EvalFlags extends ModelFlags, FaceFlags {
  pairs: string;
  images?: string;
  metric: string;
  batch?: string;
  fit?: string;
  maxPixels?: string;
  json?: boolean;
  roc?: string;
  strict?: boolean;
}

export function addEvalOptions(cmd: Command, metricDefault: string, metricHelp: string): Command {
  cmd
    .requiredOption('--pairs <file>', 'labelled pairs: LFW pairs.txt, or CSV with file_x,file_y,Decision (Yes/No)')
    .option('--images <dir>', "folder the pairs file names images in (default: the pairs file's folder)")
    .option('--metric <metric>', metricHelp, metricDefault)
    .option(...flagArgs(DESCRIBE_OPTIONS.batchSize))
    .option(
      '--strict',
      'stop at the first pair whose photo has no face (default: skip such pairs and count them in the report)',
    )
    .option('--json', 'print the report as JSON');
  addModelOptions(cmd);
  addImageOptions(cmd);
  addFaceOptions(cmd, { detectorChoice: true });
  return cmd;
}

/** The files an evaluation reads (pairs file, images, weights, detector): what it writes must be none of them. */
export function evalInputs(flags: EvalFlags, list: PairList): string[] {
  const models = [flags.weights ?? envValue('weights'), flags.detectorModel ?? envValue('detectorModel')].filter(
    (p): p is string => !!p,
  );
  return [flags.pairs, ...list.pairs.flatMap((p) => [p.a, p.b]), ...models];
}

/**
 * Loads the model, describes every image once and returns the model (still open) with the distances. `beforeLoad`
 * runs once the pairs are read, before the model loads: where a command checks what it will write.
 */
export async function measureFromFlags(
  flags: EvalFlags,
  metrics: readonly Metric[],
  beforeLoad?: (list: PairList) => void,
) {
  const batchSize = resolveFlag(DESCRIBE_OPTIONS.batchSize, flags.batch);
  const maxPixels = imageOptions(flags).maxPixels;
  const list = await readPairList(flags.pairs, flags.images ?? dirname(flags.pairs));
  beforeLoad?.(list);
  const { photos, model } = await openPhotosAndModel(flags);
  try {
    const distinct = new Set(list.pairs.flatMap((p) => [p.a, p.b])).size;
    const bar = progressBar('Describing', distinct, { threshold: 16 });
    try {
      const measured = await measurePairs(model, list, metrics, {
        batchSize,
        maxPixels,
        ...photos.options,
        strict: flags.strict ?? false,
        onProgress: (d) => bar.update(d),
      });
      return { model, measured, cacheDir: flags.cacheDir, inputs: evalInputs(flags, list) };
    } finally {
      bar.stop();
      await photos.detector?.close();
    }
  } catch (err) {
    await model.close();
    throw err;
  }
}

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

/** A note on stderr for each pair left out, as describe notes a photo without a face. */
export function noteSkipped(ctx: CommandContext, measured: PairDistances): void {
  for (const s of measured.skipped)
    ctx.stderr.write(`vggface: ${measured.list.path}: line ${s.line}: ${s.reason}; pair skipped\n`);
}

export function reportText(metric: Metric, r: EvaluationReport, skipped: readonly SkippedPair[] = []): string {
  const lines = skipped.map((s) => s.line);
  const shown = lines.length > 10 ? `${lines.slice(0, 10).join(', ')} ...` : lines.join(', ');
  return [
    `metric:            ${metric}`,
    `pairs:             ${r.pairs} (${r.samePairs} same, ${r.differentPairs} different), ${r.folds.length} folds`,
    ...(skipped.length > 0
      ? [
          `skipped:           ${skipped.length} pair${skipped.length === 1 ? '' : 's'} with a ` +
            `photo without a face (line${lines.length === 1 ? '' : 's'} ${shown})`,
        ]
      : []),
    `accuracy (10-fold): ${pct(r.accuracy)} +- ${pct(r.accuracyStd)}`,
    `ROC AUC:           ${r.auc.toFixed(4)}`,
    `EER:               ${pct(r.eer)} (threshold ${r.eerThreshold.toFixed(4)})`,
    ...r.tarAtFar.map(
      (t) => `TAR @ FAR ${t.far.toExponential(0)}: ${pct(t.tar)} (threshold ${t.threshold.toFixed(4)})`,
    ),
    `best threshold:    ${r.bestThreshold.toFixed(4)} (accuracy ${pct(r.bestThresholdAccuracy)} on all pairs)`,
  ].join('\n');
}

export function reportJson(
  metric: Metric,
  r: EvaluationReport,
  skipped: readonly SkippedPair[] = [],
): Record<string, unknown> {
  const { roc: _roc, ...rest } = r;
  return { metric, ...rest, skippedPairs: skipped.length, skipped, rocPoints: r.roc.length };
}

export function evalCommand(ctx: CommandContext): Command {
  const cmd = new Command('eval')
    .summary('accuracy (LFW 10-fold protocol), ROC AUC, EER and TAR@FAR on labelled pairs')
    .description(
      'Describes every image of a labelled pairs file once, then reports: accuracy under 10-fold cross-validation\n' +
        '(threshold chosen on 9 folds, tested on the 10th; LFW pairs.txt keeps its folds, CSV pairs are split\n' +
        'stratified in file order), ROC AUC, EER, TAR at FAR 1e-2 and 1e-3 and the most accurate threshold.',
    )
    .option('--roc <file>', 'write the ROC curve to this .svg or .png file');
  addEvalOptions(cmd, 'cosine', `distance: ${METRICS.join(', ')}`);
  return cmd.action(async (flags: EvalFlags) => {
    const metric = check.oneOf('--metric', flags.metric, METRICS) as Metric;
    if (flags.roc !== undefined) check.nonEmptyString('--roc', flags.roc);
    // The ROC file is checked before the model loads, so a wrong path costs nothing.
    const roc = flags.roc;
    const { model, measured, inputs } = await measureFromFlags(
      flags,
      [metric],
      roc ? (list) => checkOutputPath(roc, evalInputs(flags, list)) : undefined,
    );
    await model.close();
    noteSkipped(ctx, measured);
    const report = evaluateMetric(measured, metric);
    if (roc) {
      await writeRocPlot(
        roc,
        report.roc,
        {
          title: `VGG-Face ROC, ${metric}, ${report.pairs} pairs`,
          auc: report.auc,
          eer: report.eer,
          differentPairs: report.differentPairs,
        },
        inputs,
      );
    }
    ctx.stdout.write(
      flags.json
        ? JSON.stringify(reportJson(metric, report, measured.skipped)) + '\n'
        : reportText(metric, report, measured.skipped) + '\n',
    );
  });
}
