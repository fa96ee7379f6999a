import { Command } from 'commander';
import { DEFAULT_LIMITS, type FetchLimits } from '../../queue/references.js';
import { QueueWorker } from '../../queue/worker.js';
import * as check from '../../validate.js';
import type { CommandContext } from '../context.js';
import { addModelOptions, modelOptions, type ModelFlags } from '../options.js';
import { addQueueDbOption, queueDb } from './queue.js';

interface WorkerFlags extends ModelFlags {
  db?: string;
  concurrency: string;
  detectorModel?: string;
  run?: string;
  untilDone?: boolean;
  poll: string;
  maintenanceInterval: string;
  grace: string;
  maxBytes: string;
  fetchTimeout: string;
  maxRedirects: string;
  allowUrlPrefix?: string[];
}

export function workerCommand(ctx: CommandContext): Command {
  const cmd = new Command('worker')
    .summary('describe queued photos: run one on each machine')
    .description(
      'Takes batches of the runs queued with `vggface queue submit`, describes them as `describe` would (the run\n' +
        "says how: detection, alignment, layer), and stores each batch's " +
        'results in the transaction that completes it.\n' +
        "A batch a crashed worker held goes to another after the run's --batch-timeout; every photo is stored once.\n" +
        'A run submitted for another model is refused (with --run) or skipped. SIGTERM or SIGINT: no new batch is\n' +
        'taken, the batches in hand finish (or after --grace seconds are given back to the queue), exit 0.\n' +
        'Logs one line per batch on stderr.',
    )
    .option(
      '--concurrency <n>',
      'copies of the model (about 1.15 GiB fp32, 450 MiB int8 each), each describing two batches at a time',
      '1',
    )
    .option(
      '--detector-model <file>',
      'YuNet ONNX file (default: $VGGFACE_DETECTOR_MODEL, else the OpenCV Zoo ' +
        'model, downloaded into the cache on first use)',
    )
    .option('--run <id>', 'work on this run only')
    .option('--until-done', 'exit once the runs this worker can serve have nothing queued or in flight')
    .option('--poll <seconds>', 'how often an idle worker looks for batches', '2')
    .option(
      '--maintenance-interval <seconds>',
      'how often batches held past their timeout (crashed workers) are put back; one worker does it at a time',
      '30',
    )
    .option('--grace <seconds>', 'after SIGTERM, how long batches in hand may take before they are given back', '60')
    .option('--max-bytes <n>', 'largest photo read, file or URL', String(DEFAULT_LIMITS.maxBytes))
    .option('--fetch-timeout <seconds>', 'time limit for fetching one URL', String(DEFAULT_LIMITS.timeoutMs / 1000))
    .option('--max-redirects <n>', 'redirects followed for one URL', String(DEFAULT_LIMITS.maxRedirects))
    .option('--allow-url-prefix <prefix...>', 'fetch only URLs (and redirect targets) that start with one of these');
  addQueueDbOption(cmd);
  addModelOptions(cmd);
  return cmd.action(async (flags: WorkerFlags) => {
    const db = queueDb(flags);
    const concurrency = check.integer('--concurrency', flags.concurrency, 1, 64);
    const pollSeconds = check.number('--poll', flags.poll, 0.5, 3600);
    const maintenanceIntervalSeconds = check.integer('--maintenance-interval', flags.maintenanceInterval, 1, 86_399);
    const graceSeconds = check.number('--grace', flags.grace, 0, 86_400);
    const limits: FetchLimits = {
      maxBytes: check.integer('--max-bytes', flags.maxBytes, 1, 2 ** 31 - 1),
      timeoutMs: check.number('--fetch-timeout', flags.fetchTimeout, 0.1, 3600) * 1000,
      maxRedirects: check.integer('--max-redirects', flags.maxRedirects, 0, 20),
      allowPrefixes: flags.allowUrlPrefix,
    };
    const load = modelOptions(flags);
    const log = (line: string) => ctx.stderr.write(`vggface: ${line}\n`);
    const worker = await QueueWorker.start({
      db,
      concurrency,
      load,
      detectorModel: flags.detectorModel,
      run: flags.run,
      untilDone: flags.untilDone ?? false,
      pollSeconds,
      maintenanceIntervalSeconds,
      graceSeconds,
      limits,
      log,
    });
    const onSignal = (signal: string) => {
      log(`worker ${worker.id}: ${signal}: finishing the batches in hand, taking no new one`);
      worker.stop();
    };
    const term = () => onSignal('SIGTERM');
    const int = () => onSignal('SIGINT');
    process.on('SIGTERM', term);
    process.on('SIGINT', int);
    try {
      const stats = await worker.run();
      log(
        `worker ${worker.id}: stopped after ${stats.batches} batches (${stats.photos} photos ` +
          `stored)${stats.givenBack ? `, ${stats.givenBack} given back` : ''}`,
      );
      // A batch given back may still be stuck in the database or the model: it is not this process's any more.
      if (stats.givenBack > 0) setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
    } finally {
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
    }
  });
}
