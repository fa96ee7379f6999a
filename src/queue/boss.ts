/**
 * pg-boss, as the queue uses it: its tables in a schema of their own ({@link BOSS_SCHEMA}), one pg-boss queue per
 * run, no cron. Workers take jobs with `fetch` and finish them with `complete` inside the transaction that writes
 * the results (pg-boss runs its statement through our client when given `{ db }`), so a batch's results and its
 * completion commit together or not at all.
 *
 * pg-boss 10 has no heartbeat: a job a crashed worker held stays `active` until its `expireInSeconds` have passed,
 * then the next maintenance (any worker, every `maintenanceIntervalSeconds`) fails it into `retry` and another
 * worker takes it. After `retryLimit` retries it is `failed`: the run's dead-letter state, kept (not archived)
 * with its last error, listed by `queue status` and re-queued by `queue retry`.
 */
import PgBoss from 'pg-boss';
import { connectError } from './db.js';
import { BOSS_SCHEMA } from './store.js';

export type Boss = PgBoss;
export type BossJob<T> = PgBoss.JobWithMetadata<T>;

/** Failed jobs are kept this long before pg-boss archives them: they are the runs' dead letters. */
const KEEP_FAILED_SECONDS = 10 * 365 * 24 * 3600;
/** Created jobs of a run wait at most this long for a worker (pg-boss archives older ones unstarted). */
export const RUN_RETENTION_MINUTES = 365 * 24 * 60;

export interface BossOptions {
  readonly applicationName: string;
  /** Run maintenance (expire held jobs of crashed workers): workers do, submit/status/retry do not. */
  readonly supervise?: boolean;
  readonly maintenanceIntervalSeconds?: number;
  readonly max?: number;
  /** Called with errors pg-boss reports in the background (maintenance while the database is down...). */
  readonly onError?: (err: Error) => void;
}

export async function startBoss(url: string, options: BossOptions): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    schema: BOSS_SCHEMA,
    application_name: options.applicationName,
    max: options.max ?? 4,
    migrate: true,
    schedule: false,
    supervise: options.supervise ?? false,
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 60,
    archiveFailedAfterSeconds: KEEP_FAILED_SECONDS,
    connectionTimeoutMillis: 10_000,
  } as PgBoss.ConstructorOptions);
  // An 'error' event with no listener would throw and end the process.
  boss.on('error', (err) => options.onError?.(err));
  try {
    await boss.start();
  } catch (err) {
    // stop() does nothing for a boss that never started, but its pool may be open.
    await (boss.getDb() as unknown as { close(): Promise<void> }).close().catch(() => {});
    throw connectError(url, err);
  }
  return boss;
}

export async function stopBoss(boss: PgBoss): Promise<void> {
  await boss.stop({ graceful: false, wait: true, close: true }).catch(() => {});
}
