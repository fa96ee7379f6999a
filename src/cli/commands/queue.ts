import { Command } from 'commander';
import { usageError, VggFaceError } from '../../errors.js';
import { YUNET_SHA256 } from '../../face/detector-model.js';
import { checkOutputTarget, outputFormatFor, OUTPUT_FORMATS } from '../../output/descriptor-sink.js';
import { withPool } from '../../queue/db.js';
import { exportRun } from '../../queue/export.js';
import { bindingOfWeights } from '../../queue/model.js';
import { normalizeReference } from '../../queue/references.js';
import { identitiesFor, parseIdentitySource } from '../../queue/identities.js';
import { formatStatus, runStatus, type RunStatus } from '../../queue/status.js';
import { listRuns, requireRun, type RunSettings } from '../../queue/store.js';
import { retryRun, submitRun } from '../../queue/submit.js';
import { envValue } from '../../util/env.js';
import { sha256File } from '../../util/hash.js';
import * as check from '../../validate.js';
import { DESCRIBE_OPTIONS } from '../../options.js';
import { commandGroup } from '../command-group.js';
import type { CommandContext } from '../context.js';
import { addDescribeInputOptions, checkFit, describeInputs, type DescribeInputFlags } from '../face-options.js';
import { writeLine } from '../../output/json.js';
import { collectImages } from '../inputs.js';
import { flagArgs, resolveFlag } from '../options.js';

interface DbFlags {
  db?: string;
}

/** --db, else $VGGFACE_QUEUE_DB (empty means unset, as for every VGGFACE_* variable). */
export function addQueueDbOption(cmd: Command): Command {
  return cmd.option('--db <url>', "the queue's PostgreSQL: postgres://user@host/db (default: $VGGFACE_QUEUE_DB)");
}

export function queueDb(flags: DbFlags): string {
  const db = flags.db ?? envValue('queueDb');
  if (!db)
    throw usageError(
      '--db URL is required (or set VGGFACE_QUEUE_DB): the PostgreSQL server the queue lives in',
      '--db',
    );
  return db;
}

interface SubmitFlags extends DescribeInputFlags, DbFlags {
  list?: string;
  batch: string;
  into: string;
  identityFrom?: string;
  layer?: string;
  raw?: boolean;
  retries: string;
  batchTimeout: string;
}

function submitSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('submit')
    .summary('queue photos for the workers; prints the run id')
    .description(
      'Queues the photos in batches for `vggface worker` processes on any ' +
        'number of machines, and prints the run id on\n' +
        'stdout. References are paths on storage every worker sees (made absolute here) or http(s) URLs; a repeated\n' +
        'reference is queued once. The run records how its photos are described (the face and layer flags, as\n' +
        '`describe` takes them) and, when --weights names them, the model: workers with another model are refused.\n' +
        'Without --weights, the first worker that takes a batch binds the run to its model.',
    )
    .argument('[images...]', 'photos, or folders (searched recursively); - reads paths from stdin, one per line')
    .option('--list <file>', 'read references from a file, one per line (- for stdin)')
    .option('--batch <n>', 'photos per batch (one job; its results commit together)', '32')
    .option(
      '--into <target>',
      'descriptors (kept in the run: vggface queue export), or gallery (also added to the ' +
        "PostgreSQL gallery in the queue's database, largest face of each photo)",
      'descriptors',
    )
    .option(
      '--identity-from <source>',
      'with --into gallery, who each photo shows: dir (the folder it is in) or csv:FILE (rows reference,identity)',
    )
    .option(...flagArgs(DESCRIBE_OPTIONS.layer))
    .option(...flagArgs(DESCRIBE_OPTIONS.normalize))
    .option('--retries <n>', 'tries of a failing batch after the first, before it is dead', '3')
    .option(
      '--batch-timeout <seconds>',
      'a batch held longer than this (a crashed or stuck worker) is given to another worker',
      '900',
    );
  addQueueDbOption(cmd);
  addDescribeInputOptions(cmd);
  return cmd.action(async (args: string[], flags: SubmitFlags) => {
    const db = queueDb(flags);
    const batchSize = check.integer('--batch', flags.batch, 1, 10_000);
    const into = check.oneOf('--into', flags.into, ['descriptors', 'gallery'] as const);
    if (into === 'gallery' && flags.identityFrom === undefined)
      throw usageError('--into gallery needs --identity-from dir|csv:FILE: who each photo shows', '--identity-from');
    if (into !== 'gallery' && flags.identityFrom !== undefined)
      throw usageError('--identity-from: only with --into gallery', '--identity-from');
    const identitySource = flags.identityFrom === undefined ? undefined : parseIdentitySource(flags.identityFrom);
    const layer = resolveFlag(DESCRIBE_OPTIONS.layer, flags.layer);
    const retries = check.integer('--retries', flags.retries, 0, 100);
    const batchTimeoutSeconds = check.integer('--batch-timeout', flags.batchTimeout, 1, 86_399);
    const { image, faces, load } = describeInputs(flags);
    if (into === 'gallery' && faces.maxFaces !== undefined)
      throw usageError('--max-faces: a gallery takes the largest face of each photo', '--max-faces');
    if (into === 'gallery' && (layer !== 'fc7' || flags.raw))
      throw usageError(
        '--into gallery stores fc7 descriptors, L2-normalised (no --layer, no --raw)',
        into === 'gallery' && flags.raw ? '--raw' : '--layer',
      );
    checkFit(faces.detector, flags.fit);
    const stdinList = args.includes('-');
    if (stdinList && flags.list !== undefined) throw usageError('- (stdin) and --list: choose one', '--list');
    const paths = args.filter((a) => a !== '-');
    const list = stdinList ? '-' : flags.list;
    let found: string[];
    try {
      found = await collectImages(paths, list, ctx.stdin);
    } catch (err) {
      if (err instanceof VggFaceError && err.code === 'E_USAGE' && paths.length === 0 && list !== undefined) {
        throw usageError(`nothing to submit: ${list === '-' ? 'standard input' : list} lists no photos`, 'images');
      }
      throw err;
    }
    const references = found.map((r) => normalizeReference(r));
    const identities = identitySource ? await identitiesFor(references, identitySource) : undefined;
    const settings: RunSettings = {
      layer,
      normalize: !flags.raw,
      detector: faces.detector,
      ...(faces.align !== undefined ? { align: faces.align } : {}),
      ...(faces.margin !== undefined ? { margin: faces.margin } : {}),
      ...(faces.maxFaces !== undefined
        ? { maxFaces: faces.maxFaces }
        : into === 'gallery' && faces.detector !== 'none'
          ? { maxFaces: 1 }
          : {}),
      ...(faces.minFaceSize !== undefined ? { minFaceSize: faces.minFaceSize } : {}),
      ...(faces.minScore !== undefined ? { minScore: faces.minScore } : {}),
      ...(image.fit !== undefined ? { fit: image.fit } : {}),
      ...(image.maxPixels !== undefined ? { maxPixels: image.maxPixels } : {}),
      inferenceBatch: 8,
    };
    const model = await bindingOfWeights(load);
    const detectorFile = faces.detectorModel ?? envValue('detectorModel');
    const detector =
      faces.detector === 'none' ? undefined : detectorFile ? await sha256File(detectorFile) : YUNET_SHA256;
    const r = await submitRun({
      db,
      references,
      identities,
      batchSize,
      into,
      settings,
      options: { retries, batchTimeoutSeconds },
      model,
      detector,
    });
    await writeLine(ctx.stdout, r.run);
    ctx.stderr.write(
      `vggface: run ${r.run}: ${r.photos} photos queued in ${r.batches} ` +
        `batches${r.duplicates ? ` (${r.duplicates} repeated references dropped)` : ''}` +
        `${model ? '' : '; the first worker to take a batch binds the run to its model'}\n`,
    );
  });
}

function statusSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('status')
    .summary('where a run (or every run) stands')
    .description(
      'Photos done (described, without a face), failed (with the reason), pending, in flight, dead (in batches that\n' +
        'failed every try), the rate over the last minute and the time left. A few lines with a progress bar on a\n' +
        'terminal; JSON otherwise or with --json (one line per run without RUN).',
    )
    .argument('[run]', 'the run id (default: every run)')
    .option('--json', 'print JSON even on a terminal')
    .option('--watch [seconds]', 'on a terminal: redraw every few seconds until the run is finished');
  addQueueDbOption(cmd);
  return cmd.action(
    async (runId: string | undefined, flags: DbFlags & { json?: boolean; watch?: string | boolean }) => {
      const db = queueDb(flags);
      const tty = (ctx.stdout as NodeJS.WriteStream).isTTY === true && !flags.json;
      const every =
        flags.watch === undefined || flags.watch === true ? 2 : check.number('--watch', flags.watch, 0.2, 3600);
      await withPool(db, { applicationName: 'vggface-status', max: 2 }, async (pool) => {
        if (runId === undefined) {
          const runs = await listRuns(pool);
          for (const run of runs) {
            const s = await runStatus(pool, run);
            await writeLine(ctx.stdout, tty ? formatStatus(s).trimEnd() : JSON.stringify(s));
          }
          if (runs.length === 0 && tty) await writeLine(ctx.stdout, 'no runs (submit one with vggface queue submit)');
          return;
        }
        const run = await requireRun(pool, runId);
        let s: RunStatus = await runStatus(pool, run);
        if (!tty) {
          await writeLine(ctx.stdout, JSON.stringify(s));
          return;
        }
        let text = formatStatus(s);
        ctx.stdout.write(text);
        while (flags.watch !== undefined && s.state !== 'done' && s.state !== 'stalled') {
          await new Promise((r) => setTimeout(r, every * 1000));
          s = await runStatus(pool, run);
          // Move up over the previous drawing and redraw it.
          ctx.stdout.write(`\x1b[${text.split('\n').length - 1}F\x1b[J`);
          text = formatStatus(s);
          ctx.stdout.write(text);
        }
      });
    },
  );
}

function exportSubcommand(ctx: CommandContext): Command {
  const cmd = new Command('export')
    .summary("write a run's descriptors in submission order")
    .description(
      'Writes the descriptors as `describe -o` does: JSON lines (stdout, or -o FILE.jsonl), or a float32 matrix\n' +
        '(-o FILE.npy / FILE.f32, one row per face) with FILE.index.jsonl saying which rows belong to which photo.\n' +
        'Photos without a face are written as describe writes them; failed ' +
        'photos are left out and counted on stderr.\n' +
        'A run that is not finished is refused unless --partial.',
    )
    .argument('<run>', 'the run id')
    .option('-o, --output <file>', 'output file: .jsonl, .npy or .f32 (default: JSON lines on stdout)')
    .option('--output-format <format>', `${OUTPUT_FORMATS.join(', ')} (default: from the extension)`)
    .option('--overwrite', 'replace an existing output file')
    .option('--partial', 'export what is done of a run that is not finished');
  addQueueDbOption(cmd);
  return cmd.action(
    async (
      runId: string,
      flags: DbFlags & { output?: string; outputFormat?: string; overwrite?: boolean; partial?: boolean },
    ) => {
      const db = queueDb(flags);
      if ((flags.overwrite || flags.outputFormat) && !flags.output)
        throw usageError(`${flags.overwrite ? '--overwrite' : '--output-format'} needs --output FILE`, '--output');
      const format = flags.output ? outputFormatFor(flags.output, flags.outputFormat) : 'jsonl';
      if (flags.output) await checkOutputTarget(flags.output, false, flags.overwrite ?? false);
      await withPool(db, { applicationName: 'vggface-export', max: 2 }, async (pool) => {
        const run = await requireRun(pool, runId);
        const s = await runStatus(pool, run);
        const left = s.pending + s.inFlight + s.dead;
        if (left > 0 && !flags.partial) {
          throw new VggFaceError(
            'E_QUEUE',
            `run ${run.id} is not finished: ${s.pending} pending, ${s.inFlight} in flight, ${s.dead} ` +
              `in dead batches (pass --partial to export the ${s.done} photos done)`,
            { input: run.id },
          );
        }
        const r = await exportRun(pool, run, {
          path: flags.output,
          format,
          overwrite: flags.overwrite ?? false,
          stdout: ctx.stdout,
        });
        ctx.stderr.write(
          `vggface: run ${run.id}: exported ${r.photos} photos (${r.rows} ` +
            `rows)${r.failed ? `; ${r.failed} failed photos left out (vggface queue status ${run.id} says why)` : ''}` +
            `${left ? `; ${left} photos not done yet` : ''}\n`,
        );
      });
    },
  );
}

function retrySubcommand(ctx: CommandContext): Command {
  const cmd = new Command('retry')
    .summary('queue again the photos that failed in a run, and its dead batches')
    .description(
      'Photos recorded as failed are queued again in new batches (their results removed); dead ' +
        'batches get one more try.\nPrints {"run", "photos", "batches"}.',
    )
    .argument('<run>', 'the run id');
  addQueueDbOption(cmd);
  return cmd.action(async (runId: string, flags: DbFlags) => {
    const r = await retryRun(queueDb(flags), runId);
    await writeLine(ctx.stdout, JSON.stringify(r));
  });
}

export function queueCommand(ctx: CommandContext): Command {
  return commandGroup({
    name: 'queue',
    summary: 'bulk extraction across machines: submit, status, export, retry',
    description:
      'Runs of many photos on a PostgreSQL job queue (pg-boss), described by ' +
      '`vggface worker` processes on any number of machines.',
    subcommands: [submitSubcommand(ctx), statusSubcommand(ctx), exportSubcommand(ctx), retrySubcommand(ctx)],
  });
}
