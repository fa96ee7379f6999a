/**
 * Connections of the bulk-extraction queue: a pg pool whose errors never crash the process, transactions, and
 * the one rule every caller follows when PostgreSQL goes away (restart, failover, network cut): a transient error
 * is retried after a pause, anything else is reported.
 */
import pg from 'pg';
import { VggFaceError } from '../errors.js';
import { isPostgresUrl, isServerGoneCode, redactUrl } from '../gallery/postgres-store.js';

/** What pg-boss calls a database: it runs its statements through this, inside our transaction when we pass one. */
export interface SqlExecutor {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

export function queueError(message: string, options: { input?: string; cause?: unknown } = {}): VggFaceError {
  return new VggFaceError('E_QUEUE', message, options);
}

/** Opens a pool and checks that the server answers, with a message that names the (redacted) URL. */
export async function openPool(
  url: string,
  options: { max?: number; applicationName: string; connectTimeoutMs?: number },
): Promise<pg.Pool> {
  if (!isPostgresUrl(url))
    throw new VggFaceError('E_USAGE', `--db: expected a postgres:// URL, got ${JSON.stringify(redactUrl(url))}`, {
      input: '--db',
    });
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 4,
    application_name: options.applicationName,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client whose server went away: the pool drops it, the next query opens a new one.
  pool.on('error', () => {});
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw connectError(url, err);
  }
  return pool;
}

/** Opens a pool as openPool does, runs `fn` on it, and closes it whatever `fn` did. */
export async function withPool<T>(
  url: string,
  options: Parameters<typeof openPool>[1],
  fn: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const pool = await openPool(url, options);
  try {
    return await fn(pool);
  } finally {
    // The work is done (or failed with its own error): a pool that fails to close has nothing left to lose.
    await pool.end().catch(() => {});
  }
}

export function connectError(url: string, err: unknown): VggFaceError {
  const e = err as NodeJS.ErrnoException;
  const reason =
    e.code === 'ECONNREFUSED'
      ? 'connection refused (is PostgreSQL running there?)'
      : e.code === 'ENOTFOUND'
        ? 'unknown host'
        : e.message;
  return queueError(`cannot connect to ${redactUrl(url)}: ${reason}`, { input: redactUrl(url), cause: err });
}

/** Besides a server that is gone: a serialization failure, a deadlock, and a server with no connection left. */
const TRANSIENT_CODES = new Set(['40001', '40P01', '53300']);

/** Whether an error means "the server is (briefly) not there": worth retrying the same work later. */
export function isTransient(err: unknown): boolean {
  for (
    let e = err as { code?: string; message?: string; cause?: unknown } | undefined, depth = 0;
    e && depth < 4;
    e = e.cause as typeof e, depth++
  ) {
    if (e.code && (isServerGoneCode(e.code) || TRANSIENT_CODES.has(e.code))) return true;
    const m = e.message ?? '';
    if (
      // line-width: one regex of the messages of a lost connection
      /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|the database system is (starting up|shutting down)|terminating connection/i.test(
        m,
      )
    )
      return true;
  }
  return false;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref?.());

/** Runs `fn` in one transaction on one client of the pool; pg-boss statements join it through `executor`. */
export async function transaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient, executor: SqlExecutor) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // A checked-out client has no error listener of the pool's: a server that goes away between two statements
  // would otherwise be an uncaught 'error' event. The next statement fails and says why.
  const ignore = () => {};
  client.on('error', ignore);
  let broken = false;
  try {
    await client.query('BEGIN');
    const executor: SqlExecutor = { executeSql: (text, values) => client.query(text, values as unknown[]) };
    const out = await fn(client, executor);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    broken = isTransient(err);
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.removeListener('error', ignore);
    client.release(broken);
  }
}

/**
 * Retries `fn` while it fails with a transient error, pausing 0.5 s, 1 s, 2 s ... 5 s between tries, until it
 * succeeds, fails otherwise, or `until()` says to stop (then the last error is thrown).
 */
export async function retrying<T>(
  fn: () => Promise<T>,
  options: { until?: () => boolean; onRetry?: (err: unknown) => void } = {},
): Promise<T> {
  let pause = 500;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err) || options.until?.()) throw err;
      options.onRetry?.(err);
      await sleep(pause);
      pause = Math.min(5000, pause * 2);
    }
  }
}
