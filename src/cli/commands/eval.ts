import { Command } from 'commander';
import { dirname } from 'node:path';
import { METRICS, type Metric } from '../../metrics/distance.js';
import type { EvaluationReport } from '../../metrics/protocol.js';
import { writeRocPlot } from '../../metrics/roc-plot.js';
import { evaluateMetric, measurePairs } from '../../verify/evaluate.js';
import { readPairList } from '../../verify/pairs.js';
import * as check from '../../validate.js';
import type { CommandContext } from '../context.js';
import { addImageOptions, addModelOptions, imageOptions, type ModelFlags } from '../options.js';
import { addFaceOptions, openPhotosAndModel, type FaceFlags } from '../face-options.js';
import { progressBar } from '../progress.js';

export interface EvalFlags extends ModelFlags, FaceFlags {
  pairs: string;
  images?: string;
  metric: string;
  batch: string;
  fit?: string;
  maxPixels?: string;
  json?: boolean;
  roc?: string;
}

export function addEvalOptions(cmd: Command, metricDefault: string, metricHelp: string): Command {
  cmd
    .requiredOption('--pairs <file>', 'labelled pairs: LFW pairs.txt, or CSV with file_x,file_y,Decision (Yes/No)')
    .option('--images <dir>', 'folder the pairs file names images in (default: the pairs file\'s folder)')
    .option('--metric <metric>', metricHelp, metricDefault)
    .option('--batch <n>', 'images per inference call', '8')
    .option('--json', 'print the report as JSON');
  addModelOptions(cmd);
  addImageOptions(cmd);
  addFaceOptions(cmd, { detectorChoice: true });
  return cmd;
}

/** Loads the model, describes every image once and returns the model (still open) with the distances. */
export async function measureFromFlags(flags: EvalFlags, metrics: readonly Metric[]) {
  const batchSize = check.integer('--batch', flags.batch, 1, 256);
  const maxPixels = imageOptions(flags).maxPixels;
  const list = await readPairList(flags.pairs, flags.images ?? dirname(flags.pairs));
  const { photos, model } = await openPhotosAndModel(flags);
  try {
    const distinct = new Set(list.pairs.flatMap((p) => [p.a, p.b])).size;
    const bar = progressBar('Describing', distinct, { threshold: 16 });
    try {
      const measured = await measurePairs(model, list, metrics, { batchSize, maxPixels, ...photos.options, onProgress: (d) => bar.update(d) });
      return { model, measured, cacheDir: flags.cacheDir };
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

export function reportText(metric: Metric, r: EvaluationReport): string {
  return [
    `metric:            ${metric}`,
    `pairs:             ${r.pairs} (${r.samePairs} same, ${r.differentPairs} different), ${r.folds.length} folds`,
    `accuracy (10-fold): ${pct(r.accuracy)} +- ${pct(r.accuracyStd)}`,
    `ROC AUC:           ${r.auc.toFixed(4)}`,
    `EER:               ${pct(r.eer)} (threshold ${r.eerThreshold.toFixed(4)})`,
    ...r.tarAtFar.map((t) => `TAR @ FAR ${t.far.toExponential(0)}: ${pct(t.tar)} (threshold ${t.threshold.toFixed(4)})`),
    `best threshold:    ${r.bestThreshold.toFixed(4)} (accuracy ${pct(r.bestThresholdAccuracy)} on all pairs)`,
  ].join('\n');
}

export function reportJson(metric: Metric, r: EvaluationReport): Record<string, unknown> {
  const { roc: _roc, ...rest } = r;
  return { metric, ...rest, rocPoints: r.roc.length };
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
    const { model, measured } = await measureFromFlags(flags, [metric]);
    await model.close();
    const report = evaluateMetric(measured, metric);
    if (flags.roc) {
      await writeRocPlot(flags.roc, report.roc, { title: `VGG-Face ROC, ${metric}, ${report.pairs} pairs`, auc: report.auc, eer: report.eer, differentPairs: report.differentPairs });
    }
    ctx.stdout.write(flags.json ? JSON.stringify(reportJson(metric, report)) + '\n' : reportText(metric, report) + '\n');
  });
}
