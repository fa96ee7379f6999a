import { Command } from 'commander';
import { METRICS, type Metric } from '../../distance/distance.js';
import { defaultCacheDir } from '../../util/paths.js';
import { evaluateMetric } from '../../verify/evaluate.js';
import { saveCalibrations, type Calibration } from '../../verify/thresholds.js';
import { modelIdentity } from '../../model/identity.js';
import * as check from '../../validate.js';
import type { CommandContext } from '../context.js';
import { addEvalOptions, measureFromFlags, noteSkipped, reportJson, reportText, type EvalFlags } from './eval.js';

export function calibrateCommand(ctx: CommandContext): Command {
  const cmd = new Command('calibrate')
    .summary('choose and store the decision threshold of a model from labelled pairs')
    .description(
      'Evaluates labelled pairs as "eval" does and stores, for the model, the threshold most accurate on all pairs.\n' +
        'verify and gallery search then use it when no --threshold is given. ' +
        "Thresholds are kept per model (the network's\n" +
        'identity, the same for every layout of the same weights, + preprocessing) ' +
        'in <cache>/thresholds/<identity>-<preprocessing>.json.',
    );
  addEvalOptions(cmd, 'all', `distance to calibrate: ${METRICS.join(', ')} or all`);
  return cmd.action(async (flags: EvalFlags) => {
    const metrics = flags.metric === 'all' ? METRICS : [check.oneOf('--metric', flags.metric, METRICS) as Metric];
    const { model, measured, cacheDir, inputs } = await measureFromFlags(flags, metrics);
    try {
      noteSkipped(ctx, measured);
      const identity = await modelIdentity(model);
      const date = new Date().toISOString();
      const reports = metrics.map((m) => ({ metric: m, report: evaluateMetric(measured, m) }));
      const entries: Calibration[] = reports.map(({ metric, report }) => ({
        metric,
        threshold: report.bestThreshold,
        accuracy: report.bestThresholdAccuracy,
        crossValidatedAccuracy: report.accuracy,
        pairs: report.pairs,
        pairsFile: flags.pairs,
        date,
      }));
      const path = await saveCalibrations(cacheDir ?? defaultCacheDir(), identity, entries, inputs);
      if (flags.json) {
        ctx.stdout.write(
          JSON.stringify({
            file: path,
            model: identity,
            metrics: reports.map((r) => reportJson(r.metric, r.report, measured.skipped)),
          }) + '\n',
        );
      } else {
        for (const r of reports) ctx.stdout.write(reportText(r.metric, r.report, measured.skipped) + '\n\n');
        ctx.stdout.write(
          `stored ${entries.map((e) => `${e.metric} ${e.threshold.toFixed(4)}`).join(', ')} ` +
            `for ${identity.name} (${identity.preprocessing}) in ${path}\n`,
        );
      }
    } finally {
      await model.close();
    }
  });
}
