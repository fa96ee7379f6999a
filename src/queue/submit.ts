/**
 * Submitting a run (its row and all its batches, in one transaction: a run is queued whole or not at all) and
 * retrying what failed in one (photos recorded as failed, and dead batches).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { usageError } from '../errors.js';
import { RUN_RETENTION_MINUTES, startBoss, stopBoss, type Boss } from './boss.js';
import { transaction, withPool, type SqlExecutor } from './db.js';
import {
  ensureSchema,
  insertRun,
  queueName,
  requireRun,
  BOSS_SCHEMA,
  type BatchData,
  type ModelBinding,
  type Run,
  type RunOptions,
  type RunSettings,
} from './store.js';

export interface SubmitOptions {
  readonly db: string;
  /** References in submission order (already normalised); repeats are dropped (the first one counts). */
  readonly references: readonly string[];
  readonly batchSize: number;
  /**
   * descriptors: kept in the run (export them); gallery: also added to the PostgreSQL gallery in the queue's database.
   */
  readonly into: 'descriptors' | 'gallery';
  /** With into gallery: the identity of each reference (same order). */
  readonly identities?: readonly string[];
  readonly settings: RunSettings;
  readonly options: RunOptions;
  /** Known at submit when the submitter names the weights; else the first worker binds the run. */
  readonly model?: ModelBinding;
  readonly detector?: string;
}

export interface SubmitResult {
  readonly run: string;
  readonly photos: number;
  readonly batches: number;
  readonly duplicates: number;
}

const JOBS_PER_INSERT = 1000;

function newRunId(): string {
  return randomBytes(5).toString('hex');
}

/** Inserts batches of `refs` (pairs of submission index and reference) as jobs of the run's queue. */
async function enqueue(
  boss: Boss,
  db: SqlExecutor,
  run: Run | { id: string; queue: string },
  refs: BatchData['refs'],
  batchSize: number,
  firstBatch: number,
): Promise<number> {
  // Jobs inserted together are taken by priority first, then in random (uuid) order: the priority falls with the
  // batch number, so batches are taken in submission order.
  const jobs: { name: string; priority: number; data: BatchData }[] = [];
  for (let i = 0, b = firstBatch; i < refs.length; i += batchSize, b++)
    jobs.push({ name: run.queue, priority: -b, data: { run: run.id, batch: b, refs: refs.slice(i, i + batchSize) } });
  for (let i = 0; i < jobs.length; i += JOBS_PER_INSERT)
    await boss.insert(jobs.slice(i, i + JOBS_PER_INSERT), { db: db as never });
  return jobs.length;
}

async function createRunQueue(boss: Boss, queue: string, options: RunOptions): Promise<void> {
  await boss.createQueue(queue, {
    name: queue,
    policy: 'standard',
    retryLimit: options.retries,
    retryDelay: 1,
    expireInSeconds: options.batchTimeoutSeconds,
    retentionMinutes: RUN_RETENTION_MINUTES,
  } as never);
}

export async function submitRun(o: SubmitOptions): Promise<SubmitResult> {
  if (o.into === 'gallery' && o.identities?.length !== o.references.length)
    throw usageError('--into gallery needs an identity for every photo (--identity-from)', '--identity-from');
  const seen = new Set<string>();
  const refs: ([number, string] | [number, string, string])[] = [];
  o.references.forEach((r, i) => {
    if (seen.has(r)) return;
    seen.add(r);
    refs.push(o.into === 'gallery' ? [refs.length, r, o.identities![i]] : [refs.length, r]);
  });
  if (refs.length === 0) throw usageError('nothing to submit: the list of photos is empty', 'images');
  // The queue's pool and pg-boss's: two connections each.
  const connection = { applicationName: `vggface-submit ${hostname()} pid ${process.pid}`, max: 2 };
  return withPool(o.db, connection, async (pool) => {
    let boss: Boss | undefined;
    try {
      await ensureSchema(pool);
      boss = await startBoss(o.db, connection);
      const id = newRunId();
      const queue = queueName(id);
      await createRunQueue(boss, queue, o.options);
      const batches = Math.ceil(refs.length / o.batchSize);
      try {
        await transaction(pool, async (client, executor) => {
          await insertRun(client, {
            id,
            queue,
            total: refs.length,
            batches,
            batchSize: o.batchSize,
            into: o.into,
            settings: o.settings,
            options: o.options,
            model: o.model ?? null,
            detector: o.settings.detector === 'none' ? null : (o.detector ?? null),
          });
          await enqueue(boss!, executor, { id, queue }, refs, o.batchSize, 0);
        });
      } catch (err) {
        await boss.deleteQueue(queue).catch(() => {});
        throw err;
      }
      return { run: id, photos: refs.length, batches, duplicates: o.references.length - refs.length };
    } finally {
      if (boss) await stopBoss(boss);
    }
  });
}

export interface RetryResult {
  readonly run: string;
  /** Photos recorded as failed, queued again. */
  readonly photos: number;
  /** Dead batches (failed every try) put back in the queue. */
  readonly batches: number;
}

/** Dead batches of a run: pg-boss jobs in the failed state. */
export async function deadJobs(
  db: pg.Pool | pg.PoolClient,
  queue: string,
): Promise<{ id: string; photos: number; error: string | null; data: BatchData }[]> {
  const exists = await db.query(
    `SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'job'`,
    [BOSS_SCHEMA],
  );
  if (!exists.rowCount) return [];
  const r = await db.query<{
    id: string;
    data: BatchData;
    output: { message?: string; value?: { message?: string } } | null;
  }>(
    `SELECT id, data, output FROM ${BOSS_SCHEMA}.job WHERE name = $1 AND ` +
      "state = 'failed' ORDER BY (data->>'batch')::int",
    [queue],
  );
  return r.rows.map((row) => ({
    id: row.id,
    data: row.data,
    photos: row.data.refs.length,
    error: row.output?.message ?? row.output?.value?.message ?? null,
  }));
}

/**
 * Queues again what failed in a run: photos recorded as failed (their results are removed and they go into new
 * batches) and dead batches (pg-boss retries them). One transaction.
 */
export async function retryRun(db: string, runId: string): Promise<RetryResult> {
  const connection = { applicationName: `vggface-retry ${hostname()} pid ${process.pid}`, max: 2 };
  return withPool(db, connection, async (pool) => {
    let boss: Boss | undefined;
    try {
      const run = await requireRun(pool, runId);
      boss = await startBoss(db, connection);
      return await transaction(pool, async (client, executor) => {
        await client.query('SELECT id FROM vggface_queue_runs WHERE id = $1 FOR UPDATE', [run.id]);
        const failed = await client.query<{ idx: number; reference: string; identity: string | null }>(
          `DELETE FROM vggface_queue_results WHERE run = $1 AND status = 'failed' RETURNING idx, reference, identity`,
          [run.id],
        );
        // A gallery run's photos keep the identity they were submitted with.
        const refs: BatchData['refs'] = failed.rows
          .sort((a, b) => a.idx - b.idx)
          .map((r) =>
            run.into === 'gallery'
              ? ([r.idx, r.reference, r.identity ?? ''] as const)
              : ([r.idx, r.reference] as const),
          );
        const last = await client.query<{ batches: number }>('SELECT batches FROM vggface_queue_runs WHERE id = $1', [
          run.id,
        ]);
        const added = refs.length ? await enqueue(boss!, executor, run, refs, run.batchSize, last.rows[0].batches) : 0;
        if (added)
          await client.query('UPDATE vggface_queue_runs SET batches = batches + $2 WHERE id = $1', [run.id, added]);
        const dead = await deadJobs(client, run.queue);
        if (dead.length)
          await boss!.retry(
            run.queue,
            dead.map((d) => d.id),
            { db: executor as never },
          );
        return { run: run.id, photos: refs.length, batches: dead.length };
      });
    } finally {
      if (boss) await stopBoss(boss);
    }
  });
}
