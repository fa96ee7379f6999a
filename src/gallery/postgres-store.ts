/**
 * The scale-out gallery: PostgreSQL with pgvector. The project creates and migrates its own schema
 * (tables vggface_meta and vggface_faces, versioned in vggface_meta) in the schema the URL names (`?schema=`, so
 * several models share one database), else the connection's current schema. Descriptors are `vector(D)` (fp32) or
 * `halfvec(D)` (fp16). 4096 dimensions exceed pgvector's index limits for vector/halfvec, so search is either
 * exact (a scan) or approximate: each face's projection (a PCA of the gallery's own descriptors, 256 dimensions by
 * default, see projection.ts) is stored in vggface_projected under an HNSW index, which proposes candidates that are
 * re-ranked by their exact distance. (Binary quantization of the raw 4096-d descriptor, the earlier design, found
 * 38-77% of the exact top 10 at 100,000 faces: fc7 is non-negative, so its signs mostly say "active".) The index
 * costs every insert, so it is built only when approximate search is asked for (the first approximate search, or
 * `annIndex` for a server that will search approximately), and kept up to date from then on.
 *
 * Every operation is one transaction that sets its own statement and lock timeouts (SET LOCAL) and relies on no
 * session state and no named prepared statement, so PgBouncer in transaction mode works. Deadlocks and
 * serialization failures are retried; a lost connection is reopened (in the background, with backoff, when
 * `reconnect` is set), and an operation that can be repeated safely is repeated once on the new connection.
 */
import { endianness } from 'node:os';
import pg from 'pg';
import { usageError, VggFaceError } from '../errors.js';
import { decodeHalf, encodeHalf } from '../util/float16.js';
import { distanceFromSums, type Metric } from '../distance/distance.js';
import { annSettings, checkCandidates, fitGalleryProjection, needsRefit, newGeneration } from './approximate.js';
import type { IdentityMatch } from './descriptor-index.js';
import { APPLICATION, metaFromRows, metaRows } from './meta.js';
import {
  decodeProjectionRow,
  encodeProjection,
  openProjector,
  type ProjectionRow,
  type Projector,
} from './projection.js';
import type {
  AddOutcome,
  AnnIndexOptions,
  GalleryMeta,
  GalleryStore,
  IdentitySummary,
  NewFace,
  StoreSearchOptions,
} from './types.js';

export const PG_SCHEMA_VERSION = 2;
/** halfvec (fp16 storage) arrived in pgvector 0.7.0. */
export const PGVECTOR_MIN_VERSION = '0.7.0';
export const PG_DEFAULTS = {
  connectTimeoutMs: 10_000,
  /** Longest statement (SET LOCAL statement_timeout); building the approximate index has none. */
  statementTimeoutMs: 60_000,
  /** Longest wait for a lock another session holds (SET LOCAL lock_timeout). */
  lockTimeoutMs: 10_000,
} as const;
/** Serialises schema creation, migration and index builds across processes (with the schema's hash). */
const SCHEMA_LOCK = 4_096_001;
const ANN_INDEX = 'vggface_projected_hnsw';
/**
 * The approximate index: HNSW over the first WALK_COMPONENTS of each face's projection, as halfvec, built with
 * HNSW_BUILD. A walk's rows are re-ranked by the whole projection (read from the rows the walk returns anyway), then
 * the candidates by their descriptors. A walk's time is memory latency, not arithmetic (perf on pgvector 0.8.6: the
 * buffer-table lookup and the first touch of each visited node's page; the distances, 3-6%), so what counts is how
 * many nodes it visits. Measured at 1,000,000 generated faces (BENCHMARKS.md "Gallery at scale", 2 cores, huge
 * pages): recall@10 0.992 at p50 32 ms with ef_search 500, against 0.993 at 47 ms for the earlier layout (HNSW over
 * all 256 components, ef_construction 64) at ef_search 800; 64 components walked were as good as 128 (0.9875 against
 * 0.9865 at ef_search 400), so the walk's own loss, not the prefix, is the limit. The build takes longer: 33 min
 * against 22-24 at 1M. m = 32 reached the same recall at ef_search 200 (0.9925), but each visited node costs more
 * (64 links), so p50 fell only from 23-24 to 21-23 ms, for a 66 min build and 731 MiB (BENCHMARKS.md): not kept.
 */
export const WALK_COMPONENTS = 128;
export const HNSW_BUILD = { m: 16, ef_construction: 200 } as const;
/**
 * hnsw.ef_search for a search that re-ranks `candidates`: the walk keeps ef_search rows and returns at most that
 * many, and its loss falls with ef_search, not with how many of its rows are re-ranked. At 1,000,000 faces, recall@10
 * with 30 candidates at ef_search 100 / 200 / 300 / 400 / 500 / 600 / 800: 0.877 / 0.960 / 0.976 / 0.987 / 0.992 /
 * 0.995 / 0.996, p50 12 / 17 / 22 / 28 / 32 / 37 / 47 ms (50 candidates: the same recall within 0.001, 1-2 ms slower).
 * So at least 500 rows, 4 per candidate beyond 125, within pgvector's range (at most 1000).
 */
export const MIN_EF_SEARCH = 500;
export const EF_SEARCH_PER_CANDIDATE = 4;
export const efSearch = (candidates: number): number =>
  Math.min(1000, Math.max(MIN_EF_SEARCH, EF_SEARCH_PER_CANDIDATE * candidates));
/** The projection's components the walk uses: WALK_COMPONENTS, or all of a shorter projection. */
const walkComponents = (components: number): number => Math.min(WALK_COMPONENTS, components);
/** The walk's key: the first `walk` components of a projection (a column or a parameter), as halfvec. */
const walkKey = (ext: string, projection: string, walk: number): string =>
  `${ext}.subvector(${projection}, 1, ${walk})::${ext}.halfvec(${walk})`;
/** Whether an index definition, as pg_indexes shows it (schema-qualified or not), is this layout's. */
const isCurrentIndex = (def: string, walk: number): boolean => {
  const schema = '(?:"(?:[^"]|"")*"\\.|[^\\s("]+\\.)?';
  return new RegExp(
    `\\(\\(\\(${schema}subvector\\(proj, 1, ${walk}\\)\\)::${schema}halfvec\\(${walk}\\)\\) ` +
      `${schema}halfvec_l2_ops\\) WITH \\(m='${HNSW_BUILD.m}', ef_construction='${HNSW_BUILD.ef_construction}'\\)$`,
  ).test(def);
};
/** A search's candidates: how many are re-ranked, the projection's length, and how many rows the walk returns. */
interface CandidateWalk {
  readonly count: number;
  readonly components: number;
  readonly walk: number;
}
/** Faces read, projected and written per step while building the approximate index (64 MiB of fp32 descriptors). */
const BUILD_BATCH = 4096;
/** Rows per INSERT statement: 500 x 16 KiB of fp32 4096-d descriptors is 8 MiB. */
const ROWS_PER_INSERT = 500;
/** Attempts of a transaction that hit a deadlock or a serialization failure. */
const MAX_ATTEMPTS = 6;
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** Names of URL query parameters that hold secrets. */
const SECRET_PARAMS = /^(password|pass|pwd|sslpassword|sslkey)$/i;

/** The URL without its password (in the authority or as ?password=), for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (SECRET_PARAMS.test(k)) u.searchParams.set(k, '***');
    return u.toString().replace(/=\*\*\*(?=&|#|$)/g, '=***');
  } catch {
    return url
      .replace(/(\/\/[^/@?#:]*):[^@/?#]*@/, '$1:***@')
      .replace(/([?&](?:password|pass|pwd|sslpassword|sslkey)=)[^&#]*/gi, '$1***');
  }
}

/** Removes every form of the URL's password from a text (an error message from a driver, say). */
function scrub(text: string, url: string): string {
  const secrets = new Set<string>();
  try {
    const u = new URL(url);
    if (u.password) {
      secrets.add(u.password);
      secrets.add(decodeURIComponent(u.password));
    }
    for (const [k, v] of u.searchParams) if (SECRET_PARAMS.test(k) && v) secrets.add(v);
  } catch {
    // not a URL: nothing to find
  }
  let out = text.split(url).join(redactUrl(url));
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) if (s.length > 0) out = out.split(s).join('***');
  return out;
}

/** Why a gallery operation could not run: the server is unreachable or too slow (the API answers 503). */
export class GalleryUnavailableError extends VggFaceError {
  constructor(
    message: string,
    readonly reason: 'unavailable' | 'timeout',
    options: { input?: string; cause?: unknown } = {},
  ) {
    super('E_GALLERY', message, options);
  }
}

/**
 * A descriptor as a binary query parameter in pgvector's wire format (vector_recv / halfvec_recv: int16 dimension,
 * int16 unused, then big-endian float32 or float16 values): 8 KiB for a 4096-d halfvec instead of ~80 KB of text,
 * and no float parsing on the server (measured 10x faster loading into PGlite than the text form).
 */
export function vectorParam(v: Float32Array, precision: 'fp32' | 'fp16'): Buffer {
  const half = precision === 'fp16';
  const b = Buffer.allocUnsafe(4 + v.length * (half ? 2 : 4));
  b.writeInt16BE(v.length, 0);
  b.writeInt16BE(0, 2);
  const values = half ? encodeHalf(v) : v;
  const body = b.subarray(4);
  Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(body);
  // Big-endian on the wire: swap the native little-endian values in place (a loop of writeFloatBE is 10x slower).
  if (LITTLE_ENDIAN && half) body.swap16();
  else if (LITTLE_ENDIAN) body.swap32();
  return b;
}
const LITTLE_ENDIAN = endianness() === 'LE';

export { isPostgresUrl } from './types.js';

export interface PostgresOpenOptions {
  /** Default: the URL's connect_timeout (seconds, as libpq), else 10 s. */
  readonly connectTimeoutMs?: number;
  /** Default: the URL's statement_timeout, else 60 s; 0 for none. */
  readonly statementTimeoutMs?: number;
  /** Default: the URL's lock_timeout, else 10 s; 0 for none. */
  readonly lockTimeoutMs?: number;
  /** The schema holding the gallery's tables. Default: the URL's `schema`, else the connection's current schema. */
  readonly schema?: string;
  /** Build the approximate-search index now if the gallery lacks it, and with the tables of a new gallery. */
  readonly annIndex?: boolean;
  /**
   * After the connection is lost, reconnect in the background with backoff (a long-running server); default: at the
   * next operation.
   */
  readonly reconnect?: boolean;
  /** Told when the connection is lost and when it is back. */
  readonly onStateChange?: (state: PostgresConnectionState) => void;
}

export interface PostgresConnectionState {
  readonly state: 'connecting' | 'connected' | 'reconnecting' | 'closed';
  /** Date.now() of the change. */
  readonly since: number;
  /** Why the connection was lost, or why the last attempt failed (never a password). */
  readonly error?: string;
}

/** A gallery URL taken apart: what node-postgres gets, and vggface's own parameters (never sent to the server). */
export interface ParsedPostgresUrl {
  readonly location: string;
  readonly sslmode: SslMode;
  /** The connection strings to try in order (libpq's allow and prefer fall back to the other kind). */
  readonly attempts: readonly { readonly ssl: boolean; readonly connectionString: string }[];
  readonly schema?: string;
  readonly connectTimeoutMs?: number;
  readonly statementTimeoutMs?: number;
  readonly lockTimeoutMs?: number;
}

/** "30s", "500ms", "2min", "1500" (milliseconds, as PostgreSQL reads a bare number of these settings). */
function parseDuration(name: string, value: string, location: string, unitless: 'ms' | 's'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\s*$/.exec(value);
  if (!m)
    throw usageError(
      `${location}: ${name} must be a duration such as 500ms, 30s or 2min (0 for none), got ${JSON.stringify(value)}`,
      name,
    );
  const scale = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 }[(m[2] ?? unitless) as 'ms' | 's' | 'min' | 'h'];
  const ms = Math.round(Number(m[1]) * scale);
  if (ms > 2_147_483_647)
    throw usageError(`${location}: ${name} is too long (at most 24 days), got ${JSON.stringify(value)}`, name);
  return ms;
}

/**
 * Splits a postgres:// URL into what node-postgres needs and vggface's parameters: `schema`, `statement_timeout`,
 * `lock_timeout` (removed: PgBouncer refuses unknown startup parameters) and `connect_timeout` (libpq's, seconds).
 * `sslmode` gets libpq's meaning (node-postgres's own parser treats prefer, require and verify-ca as verify-full):
 * the default is `prefer` (or $PGSSLMODE), as for libpq.
 */
export function parsePostgresUrl(url: string, env: NodeJS.ProcessEnv = process.env): ParsedPostgresUrl {
  const location = redactUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError(
      `${location}: not a valid URL (expected ` +
        'postgres://user@host:port/database; encode special characters of the password as %XX)',
      '--db',
    );
  }
  const take = (name: string): string | undefined => {
    const v = u.searchParams.get(name) ?? undefined;
    u.searchParams.delete(name);
    return v;
  };
  const schema = take('schema');
  if (schema !== undefined && !/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/.test(schema)) {
    throw usageError(
      `${location}: schema must be a name of 1 to 63 letters, digits, _ or $, not ` +
        `starting with a digit, got ${JSON.stringify(schema)}`,
      'schema',
    );
  }
  const duration = (name: string, unitless: 'ms' | 's') => {
    const v = take(name);
    return v === undefined ? undefined : parseDuration(name, v, location, unitless);
  };
  const statementTimeoutMs = duration('statement_timeout', 'ms');
  const lockTimeoutMs = duration('lock_timeout', 'ms');
  const connectTimeoutMs = duration('connect_timeout', 's');
  take('uselibpqcompat'); // always libpq's meaning
  let mode = (take('sslmode') ?? env.PGSSLMODE ?? 'prefer').toLowerCase();
  if (mode === 'no-verify') mode = 'require'; // node-postgres's name for what libpq calls require
  if (!(SSL_MODES as readonly string[]).includes(mode)) {
    throw usageError(
      `${location}: sslmode must be one of ${SSL_MODES.join(', ')}, got ${JSON.stringify(mode)}`,
      'sslmode',
    );
  }
  const sslmode = mode as SslMode;
  const withMode = (m: SslMode) => {
    const v = new URL(u.toString());
    v.searchParams.set('sslmode', m);
    if (m !== 'disable') v.searchParams.set('uselibpqcompat', 'true');
    return v.toString();
  };
  const plain = { ssl: false, connectionString: withMode('disable') };
  const encrypted = {
    ssl: true,
    connectionString: withMode(sslmode === 'allow' || sslmode === 'prefer' ? 'require' : sslmode),
  };
  const attempts =
    sslmode === 'disable'
      ? [plain]
      : sslmode === 'allow'
        ? [plain, encrypted]
        : sslmode === 'prefer'
          ? [encrypted, plain]
          : [encrypted];
  return { location, sslmode, attempts, schema, connectTimeoutMs, statementTimeoutMs, lockTimeoutMs };
}

/** Network errors and an administrator's shutdown (57P01-57P03) that mean the server is gone, for now. */
const SERVER_GONE_CODES: readonly string[] = [
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
];

/**
 * Whether an error code means the server cannot be reached or went away (also SQLSTATE class 08, connection
 * exceptions): what was sent may be sent again once it is back. The gallery and the queue each add their own codes.
 */
export const isServerGoneCode = (code: string): boolean => code.startsWith('08') || SERVER_GONE_CODES.includes(code);

/** Connection-level failures: the session is gone (or was never there), the statement may be repeated elsewhere. */
function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  // Also a host name that does not resolve and a connection aborted on the way: a reconnect may find the server.
  if (isServerGoneCode(code) || code === 'ENOTFOUND' || code === 'ECONNABORTED') return true;
  // line-width: regex
  return /Connection terminated|not queryable|connection timeout|timeout expired|Query read timeout|server closed the connection|socket hang up/i.test(
    String(e?.message ?? ''),
  );
}

const isRetryable = (err: unknown): boolean => ['40P01', '40001'].includes((err as { code?: string })?.code ?? '');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;
const formatMs = (ms: number) => (ms === 0 ? 'none' : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++)
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

type Query = <R extends pg.QueryResultRow = Record<string, unknown>>(
  sql: string,
  params?: unknown[],
) => Promise<pg.QueryResult<R>>;

/** Names of the gallery's objects in its schema, and pgvector's types, functions and operators in the extension's. */
interface Names {
  readonly schema: string;
  readonly meta: string;
  readonly faces: string;
  readonly projection: string;
  readonly projected: string;
  /** The extension's schema, quoted, and as it is. */
  readonly ext: string;
  readonly extSchema: string;
}

/** Migrations: index i takes version i to i + 1. */
const MIGRATIONS: readonly ((n: Names, dim: number, type: string) => string[])[] = [
  (n, dim, type) => [
    `CREATE TABLE ${n.meta} (key text PRIMARY KEY, value text NOT NULL)`,
    `CREATE TABLE ${n.faces} (
       id bigserial PRIMARY KEY,
       identity text NOT NULL,
       content_hash text NOT NULL UNIQUE,
       source text NOT NULL,
       added_at timestamptz NOT NULL DEFAULT now(),
       embedding ${n.ext}.${type}(${dim}) NOT NULL
     )`,
    `CREATE INDEX vggface_faces_identity ON ${n.faces} (identity)`,
  ],
  // The approximate index becomes a projection (its table typed to the projection's size when it is built).
  (n) => [
    `DROP INDEX IF EXISTS ${quoteIdent(n.schema)}.vggface_faces_binary_hnsw`,
    `CREATE TABLE ${n.projection} (
       id int PRIMARY KEY CHECK (id = 1),
       generation text NOT NULL,
       dim int NOT NULL,
       components int NOT NULL,
       fitted_on int NOT NULL,
       total_variance float8 NOT NULL,
       mean bytea NOT NULL,
       basis bytea NOT NULL,
       variances bytea NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now()
     )`,
    `CREATE TABLE ${n.projected} (face_id bigint PRIMARY KEY REFERENCES ${n.faces} ` +
      `(id) ON DELETE CASCADE, proj ${n.ext}.vector NOT NULL)`,
  ],
];

export class PostgresStore implements GalleryStore {
  private cachedMeta: GalleryMeta | undefined;
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private names: Names;
  private annIndexKnown = false;
  /** The projection in use, by generation (read again when another process replaced it). */
  private approx: { generation: string; projector: Projector } | undefined;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stateNow: PostgresConnectionState = { state: 'connecting', since: Date.now() };
  readonly location: string;
  readonly statementTimeoutMs: number;
  readonly lockTimeoutMs: number;
  private readonly connectTimeoutMs: number;

  private constructor(
    private readonly url: string,
    private readonly parsed: ParsedPostgresUrl,
    private readonly options: PostgresOpenOptions,
  ) {
    this.location = parsed.location;
    this.statementTimeoutMs = options.statementTimeoutMs ?? parsed.statementTimeoutMs ?? PG_DEFAULTS.statementTimeoutMs;
    this.lockTimeoutMs = options.lockTimeoutMs ?? parsed.lockTimeoutMs ?? PG_DEFAULTS.lockTimeoutMs;
    this.connectTimeoutMs = options.connectTimeoutMs ?? parsed.connectTimeoutMs ?? PG_DEFAULTS.connectTimeoutMs;
    this.names = namesFor(options.schema ?? parsed.schema ?? 'public', 'public');
  }

  private error(problem: string, cause?: unknown): VggFaceError {
    return new VggFaceError('E_GALLERY', `${this.location}: ${problem}`, { input: this.location, cause });
  }

  static async open(url: string, options: PostgresOpenOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(url, parsePostgresUrl(url), options);
    try {
      await store.connection();
      await store.run('write', async (q) => {
        const schema =
          options.schema ??
          store.parsed.schema ??
          (await q<{ s: string | null }>('SELECT current_schema() AS s')).rows[0].s;
        if (!schema)
          throw store.error('the search_path names no existing schema: name one with ?schema=NAME in the URL');
        store.names = namesFor(schema, store.names.extSchema);
        await store.checkExtension(q, false);
        await store.checkSchema(q);
      });
      if (options.annIndex && (await store.meta())) await store.ensureAnnIndex();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** Where the connection stands (a server reports it in /healthz). */
  get connectionState(): PostgresConnectionState {
    return this.stateNow;
  }

  private setState(state: PostgresConnectionState['state'], error?: unknown): void {
    const message = error === undefined ? undefined : this.reason(error);
    if (this.stateNow.state === state && this.stateNow.error === message) return;
    const changed = this.stateNow.state !== state;
    this.stateNow = {
      state,
      since: changed ? Date.now() : this.stateNow.since,
      ...(message ? { error: message } : {}),
    };
    if (changed) this.options.onStateChange?.(this.stateNow);
  }

  /** What went wrong with a connection, in a few words, without any password. */
  private reason(err: unknown): string {
    const e = err as NodeJS.ErrnoException;
    const text =
      e?.code === 'ECONNREFUSED'
        ? 'connection refused (is PostgreSQL running there?)'
        : e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN'
          ? 'unknown host'
          : /Query read timeout/.test(String(e?.message))
            ? 'the server stopped answering (no reply within the statement timeout plus 10 s)'
            : /timeout/i.test(String(e?.message)) && !('severity' in (e ?? {}))
              ? `no answer within ${formatMs(this.connectTimeoutMs)}`
              : String(e?.message ?? err);
    return scrub(text, this.url);
  }

  /** The open connection, or a new one (one attempt, shared by concurrent callers). */
  private async connection(): Promise<pg.Client> {
    if (this.client) return this.client;
    if (this.closed)
      throw new GalleryUnavailableError(`${this.location}: the gallery is closed`, 'unavailable', {
        input: this.location,
      });
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = undefined));
    try {
      const client = await this.connecting;
      this.failures = 0;
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.setState('connected');
      return client;
    } catch (err) {
      if (this.closed) throw err;
      this.setState('reconnecting', err);
      this.scheduleReconnect();
      if (err instanceof VggFaceError) throw err;
      throw new GalleryUnavailableError(`cannot connect to ${this.location}: ${this.reason(err)}`, 'unavailable', {
        input: this.location,
        cause: err,
      });
    }
  }

  private async connectOnce(): Promise<pg.Client> {
    let last: unknown;
    for (const [i, attempt] of this.parsed.attempts.entries()) {
      const client = new pg.Client({
        connectionString: attempt.connectionString,
        connectionTimeoutMillis: this.connectTimeoutMs,
        keepAlive: true,
      });
      // A dropped idle connection: forget it (the next operation, or the reconnect loop, opens another).
      client.on('error', (err) => this.lost(client, err));
      client.on('end', () => this.lost(client, new Error('the server closed the connection')));
      try {
        await client.connect();
        if (this.closed) {
          await client.end().catch(() => {});
          throw new GalleryUnavailableError(`${this.location}: the gallery is closed`, 'unavailable', {
            input: this.location,
          });
        }
        this.client = client;
        return client;
      } catch (err) {
        client.removeAllListeners('end');
        await client.end().catch(() => {});
        last = err;
        if (err instanceof VggFaceError) throw err;
        // libpq's allow tries SSL when the server refuses a plain connection; prefer tries plain when it has no SSL.
        const next = this.parsed.attempts[i + 1];
        const refusedPlain =
          !attempt.ssl &&
          /no encryption|SSL (?:connection )?(?:is )?required|hostssl/i.test(String((err as Error).message));
        const noSsl = attempt.ssl && /does not support SSL/i.test(String((err as Error).message));
        if (!next || !(refusedPlain || noSsl)) break;
      }
    }
    const e = last as { code?: string; message?: string };
    if (/self[- ]signed|certificate|hostname|altnames|SECURITY WARNING/i.test(String(e?.message))) {
      const hint =
        this.parsed.sslmode === 'verify-full' || this.parsed.sslmode === 'verify-ca'
          ? ` (sslmode=${this.parsed.sslmode} checks the server's ` +
            `certificate${this.parsed.sslmode === 'verify-full' ? ' and its name' : ''}: name ` +
            'its CA with sslrootcert=FILE, or use sslmode=require to encrypt without checking)'
          : '';
      throw new VggFaceError('E_GALLERY', `cannot connect to ${this.location}: ${this.reason(last)}${hint}`, {
        input: this.location,
        cause: last,
      });
    }
    if (e?.code === '28P01' || e?.code === '28000' || e?.code === '3D000') {
      // Not the server being away: the URL is wrong for it (authentication, database).
      throw new VggFaceError('E_GALLERY', `cannot connect to ${this.location}: ${this.reason(last)}`, {
        input: this.location,
        cause: last,
      });
    }
    throw last;
  }

  private lost(client: pg.Client, err: unknown): void {
    if (client !== this.client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    void client.end().catch(() => {});
    if (this.closed) return;
    this.setState('reconnecting', err);
    this.scheduleReconnect();
  }

  /**
   * With `reconnect`: tries again after 0.25 s, 0.5 s, 1 s... up to 5 s between attempts, until connected or closed.
   */
  private scheduleReconnect(): void {
    if (!this.options.reconnect || this.closed || this.reconnectTimer) return;
    const delay = Math.min(5000, 250 * 2 ** this.failures) * (0.8 + 0.4 * Math.random());
    this.failures++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.client && !this.closed) void this.connection().catch(() => {});
    }, delay);
    this.reconnectTimer.unref();
  }

  /**
   * Runs `fn` in one transaction with this store's timeouts. When `repeatable`, deadlocks and serialization failures
   * are retried with a pause, and after a lost connection the transaction is repeated once on a new one when that is
   * safe (it only reads, or it was not committing when the connection went).
   */
  private async run<T>(
    kind: 'read' | 'write',
    fn: (q: Query) => Promise<T>,
    what = 'query',
    repeatable = true,
  ): Promise<T> {
    let reconnected = false;
    for (let attempt = 1; ; attempt++) {
      const client = await this.connection();
      let committing = false;
      const statementTimeout = { ms: this.statementTimeoutMs };
      const q: Query = async (sql, params = []) => {
        if (/^\s*SET LOCAL statement_timeout = (\d+)/.test(sql)) statementTimeout.ms = Number(/= (\d+)/.exec(sql)![1]);
        // A server that stops answering (a network cut, no reset) is given up on past the statement timeout.
        const queryTimeout = statementTimeout.ms > 0 ? statementTimeout.ms + 10_000 : undefined;
        return client.query({
          text: sql,
          values: params,
          ...(queryTimeout ? { query_timeout: queryTimeout } : {}),
        } as pg.QueryConfig);
      };
      try {
        await client.query(
          `BEGIN; SET LOCAL statement_timeout = ${this.statementTimeoutMs}; ` +
            `SET LOCAL lock_timeout = ${this.lockTimeoutMs}`,
        );
        const out = await fn(q);
        committing = true;
        await client.query('COMMIT');
        return out;
      } catch (err) {
        if (isConnectionError(err)) {
          this.lost(client, err);
          if (repeatable && !reconnected && (kind === 'read' || !committing) && !this.closed) {
            reconnected = true;
            continue;
          }
          throw new GalleryUnavailableError(
            `${this.location}: the connection to PostgreSQL was ` +
              `lost${committing ? ' while committing (the change may or may not be stored)' : ''}: ${this.reason(err)}`,
            'unavailable',
            { input: this.location, cause: err },
          );
        }
        if (this.client === client) await client.query('ROLLBACK').catch(() => {});
        if (repeatable && isRetryable(err) && attempt < MAX_ATTEMPTS) {
          await sleep(Math.min(1000, 20 * 2 ** attempt) * (0.5 + Math.random()));
          continue;
        }
        throw this.describe(err, what, attempt, statementTimeout.ms);
      }
    }
  }

  private describe(err: unknown, what: string, attempts: number, statementTimeoutMs: number): VggFaceError {
    if (err instanceof VggFaceError) return err;
    const e = err as pg.DatabaseError;
    const message = scrub(String(e?.message ?? err), this.url);
    switch (e?.code) {
      case '57014':
        return new GalleryUnavailableError(
          `${this.location}: ${what} took longer than the statement timeout (${formatMs(statementTimeoutMs)}): raise ` +
            'it with statement_timeout in the URL (for example ?statement_timeout=5min; 0 for none)',
          'timeout',
          { input: this.location, cause: err },
        );
      case '55P03':
        return new GalleryUnavailableError(
          `${this.location}: ${what} waited longer than the lock timeout ` +
            `(${formatMs(this.lockTimeoutMs)}) for a lock another session holds: ${message}; retry ` +
            'later, or raise it with lock_timeout in the URL (for example ?lock_timeout=1min)',
          'timeout',
          { input: this.location, cause: err },
        );
      case '40P01':
      case '40001':
        if (attempts > 1) return this.error(`${what} failed ${attempts} times, each time with: ${message}`, err);
        return this.error(`${what} failed: ${message}`, err);
      default:
        return this.error(`${what} failed: ${message}`, err);
    }
  }

  /**
   * pgvector installed, recent enough, and (with `create`) created: the messages say what to run, and who must.
   * Also learns the extension's schema: its types, functions and operators are named with it.
   */
  private async checkExtension(q: Query, create: boolean): Promise<void> {
    const info = async () =>
      (
        await q<{
          installed: string | null;
          ext_schema: string | null;
          available: string | null;
          usr: string;
          db: string;
        }>(
          `SELECT e.extversion AS installed, n.nspname AS ext_schema,
                  (SELECT default_version FROM pg_available_extensions WHERE name = 'vector') AS available,
                  current_user AS usr, current_database() AS db
             FROM (SELECT 1) one LEFT JOIN pg_extension e ON e.extname = 'vector'
                  LEFT JOIN pg_namespace n ON n.oid = e.extnamespace`,
        )
      ).rows[0];
    let x = await info();
    const database = quoteIdent(x.db);
    if (x.installed === null) {
      if (x.available === null) {
        throw this.error(
          'pgvector is not installed on the PostgreSQL server (no extension "vector" is available): install ' +
            `pgvector ${PGVECTOR_MIN_VERSION} or later there (https://github.com/pgvector/pgvector#installation), ` +
            `then a superuser runs, in database ${database}: CREATE EXTENSION vector;`,
        );
      }
      if (compareVersions(x.available, PGVECTOR_MIN_VERSION) < 0)
        throw this.tooOld(x.available, x.available, database, 'available on the server');
      if (!create) return;
      try {
        await q('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]); // one extension for every schema of the database
        await q('CREATE EXTENSION IF NOT EXISTS vector');
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== '42501') throw err;
        throw this.error(
          `role ${quoteIdent(x.usr)} may not create the pgvector extension in database ${database} ` +
            `(${(err as Error).message}): a superuser must run, connected to ` +
            `database ${database}: CREATE EXTENSION IF NOT EXISTS vector;`,
          err,
        );
      }
      x = await info();
    }
    if (compareVersions(x.installed!, PGVECTOR_MIN_VERSION) < 0)
      throw this.tooOld(x.installed!, x.available, database, `installed in database ${database}`);
    this.names = namesFor(this.names.schema, x.ext_schema!);
  }

  private tooOld(found: string, available: string | null, database: string, where: string): VggFaceError {
    const fix =
      available !== null && compareVersions(available, PGVECTOR_MIN_VERSION) >= 0
        ? `a superuser runs, connected to database ${database}: ALTER EXTENSION vector UPDATE;`
        : `install pgvector ${PGVECTOR_MIN_VERSION} or later on the server ` +
          '(https://github.com/pgvector/pgvector#installation), then a superuser runs, connected to ' +
          `database ${database}: ALTER EXTENSION vector UPDATE;`;
    return this.error(
      `pgvector ${found} is ${where}; vggface needs ${PGVECTOR_MIN_VERSION} or later (halfvec): ${fix}`,
    );
  }

  private async tables(q: Query): Promise<string[]> {
    const r = await q<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND ' +
        "table_name IN ('vggface_meta', 'vggface_faces') ORDER BY table_name DESC",
      [this.names.schema],
    );
    return r.rows.map((x) => x.table_name);
  }

  /** Refuses a database whose vggface tables are not ours or are newer; migrates older ones. */
  private async checkSchema(q: Query): Promise<void> {
    const tables = await this.tables(q);
    if (tables.length === 0) return;
    if (tables.length !== 2)
      throw this.error(`wrong schema: found ${tables.join(', ')} but not both vggface_meta and vggface_faces`);
    const meta = await this.readMetaRows(q);
    if (meta.application !== APPLICATION)
      throw this.error('wrong schema: vggface_meta has no application = vggface-gallery');
    const version = Number(meta.schema_version);
    if (version > PG_SCHEMA_VERSION)
      throw this.error(
        `gallery schema version ${version} is newer than this vggface supports (${PG_SCHEMA_VERSION}); upgrade vggface`,
      );
    if (!(version >= 1)) throw this.error(`wrong schema: schema_version "${meta.schema_version}"`);
    const cols = await q<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'vggface_faces'`,
      [this.names.schema],
    );
    const names = cols.rows.map((c) => c.column_name);
    for (const c of ['id', 'identity', 'content_hash', 'source', 'embedding']) {
      if (!names.includes(c)) throw this.error(`wrong schema: table vggface_faces has no column ${c}`);
    }
    if (version < PG_SCHEMA_VERSION)
      await this.migrate(q, Number(meta.dimension), meta.precision === 'fp16' ? 'halfvec' : 'vector');
  }

  private async readMetaRows(q: Query): Promise<Record<string, string>> {
    const r = await q<{ key: string; value: string }>(`SELECT key, value FROM ${this.names.meta}`);
    return Object.fromEntries(r.rows.map((x) => [x.key, x.value]));
  }

  private lock(q: Query): Promise<unknown> {
    return q('SELECT pg_advisory_xact_lock($1, hashtext($2))', [SCHEMA_LOCK, this.names.schema]);
  }

  private async migrate(q: Query, dim: number, type: string): Promise<void> {
    await this.lock(q);
    const current = Number((await this.readMetaRows(q)).schema_version);
    for (let v = current; v < PG_SCHEMA_VERSION; v++)
      for (const sql of MIGRATIONS[v](this.names, dim, type)) await q(sql);
    await q(`UPDATE ${this.names.meta} SET value = $1 WHERE key = 'schema_version'`, [String(PG_SCHEMA_VERSION)]);
  }

  async meta(): Promise<GalleryMeta | undefined> {
    if (this.cachedMeta) return this.cachedMeta;
    const m = await this.run(
      'read',
      async (q) => ((await this.tables(q)).length === 0 ? undefined : this.readMetaRows(q)),
      'reading the gallery',
    );
    if (!m) return undefined;
    this.cachedMeta = metaFromRows(m);
    return this.cachedMeta;
  }

  async initialize(meta: GalleryMeta): Promise<GalleryMeta> {
    await this.run(
      'write',
      async (q) => {
        await this.lock(q);
        if ((await this.tables(q)).length > 0) return;
        await this.checkExtension(q, true);
        const exists = await q(`SELECT 1 FROM pg_namespace WHERE nspname = $1`, [this.names.schema]);
        if (exists.rows.length === 0) await q(`CREATE SCHEMA ${quoteIdent(this.names.schema)}`);
        for (const m of MIGRATIONS)
          for (const sql of m(this.names, meta.dimension, meta.precision === 'fp16' ? 'halfvec' : 'vector'))
            await q(sql);
        const rows = metaRows(meta, PG_SCHEMA_VERSION);
        await q(`INSERT INTO ${this.names.meta} (key, value) SELECT * FROM unnest($1::text[], $2::text[])`, [
          rows.map((r) => r[0]),
          rows.map((r) => r[1]),
        ]);
      },
      'creating the gallery',
    );
    this.cachedMeta = undefined;
    const m = (await this.meta())!;
    if (this.options.annIndex) await this.ensureAnnIndex();
    return m;
  }

  async existing(hashes: readonly string[]): Promise<Map<string, { identity: string; source: string }>> {
    const out = new Map<string, { identity: string; source: string }>();
    if (hashes.length === 0 || !(await this.meta())) return out;
    const r = await this.run(
      'read',
      (q) =>
        q<{ content_hash: string; identity: string; source: string }>(
          `SELECT content_hash, identity, source FROM ${this.names.faces} WHERE content_hash = ANY($1)`,
          [hashes],
        ),
      'looking up images',
    );
    for (const x of r.rows) out.set(x.content_hash, { identity: x.identity, source: x.source });
    return out;
  }

  private vectorType(meta: GalleryMeta): string {
    return `${this.names.ext}.${meta.precision === 'fp16' ? 'halfvec' : 'vector'}(${meta.dimension})`;
  }

  /**
   * Inserts faces in multi-row statements, in content-hash order (two sessions adding the same faces lock them
   * in the same order, so they do not deadlock); returns the hashes inserted with their ids.
   */
  private async insertRows(
    q: Query,
    meta: GalleryMeta,
    faces: readonly NewFace[],
    returning: boolean,
  ): Promise<Map<string, number>> {
    const type = this.vectorType(meta);
    // Shared with other adds, exclusive with an index build: a face is never stored between a build's last read and
    // its commit, which would leave it without a projection.
    await q('SELECT pg_advisory_xact_lock_shared($1, hashtext($2))', [SCHEMA_LOCK, this.names.schema]);
    const approx = await this.currentProjector(q);
    if (approx) returning = true;
    const seen = new Set<string>();
    const rows = faces
      .filter((f) => !seen.has(f.contentHash) && seen.add(f.contentHash))
      .sort((a, b) => (a.contentHash < b.contentHash ? -1 : a.contentHash > b.contentHash ? 1 : 0));
    const inserted = new Map<string, number>();
    for (let s = 0; s < rows.length; s += ROWS_PER_INSERT) {
      const chunk = rows.slice(s, s + ROWS_PER_INSERT);
      const values = chunk
        .map((_, i) => `($${4 * i + 1}, $${4 * i + 2}, $${4 * i + 3}, $${4 * i + 4}::${type})`)
        .join(', ');
      const r = await q<{ id: string; content_hash: string }>(
        `INSERT INTO ${this.names.faces} (identity, content_hash, source, embedding) VALUES ${values} ON ` +
          `CONFLICT (content_hash) DO NOTHING${returning ? ' RETURNING id, content_hash' : ''}`,
        chunk.flatMap((f) => [f.identity, f.contentHash, f.source, vectorParam(f.descriptor, meta.precision)]),
      );
      for (const x of r.rows) inserted.set(x.content_hash, Number(x.id));
      if (approx && r.rows.length > 0) {
        const byHash = new Map(chunk.map((f) => [f.contentHash, f]));
        await this.insertProjections(
          q,
          approx.projector,
          r.rows.map((x) => ({ id: Number(x.id), descriptor: byHash.get(x.content_hash)!.descriptor })),
        );
      }
    }
    return inserted;
  }

  /** Projects faces and stores their projections (multi-row statements, binary vectors). */
  /**
   * The stored descriptor as bytea in pgvector's binary form (node-postgres reads results only as text: a bytea is
   * 32 KiB of hex for a 4096-d vector, against about 80 KB of decimal text parsed number by number).
   */
  private sendVector(meta: GalleryMeta): string {
    return `${this.names.ext}.${meta.precision === 'fp16' ? 'halfvec_send' : 'vector_send'}(embedding)`;
  }

  private async insertProjections(
    q: Query,
    projector: Projector,
    faces: readonly { id: number; descriptor: Float32Array }[],
  ): Promise<void> {
    const { dim, components } = projector.projection;
    const x = new Float32Array(faces.length * dim);
    faces.forEach((f, i) => x.set(f.descriptor, i * dim));
    const proj = await projector.project(x, faces.length);
    const type = `${this.names.ext}.vector(${components})`;
    for (let s = 0; s < faces.length; s += ROWS_PER_INSERT) {
      const chunk = faces.slice(s, s + ROWS_PER_INSERT);
      const values = chunk.map((_, i) => `($${2 * i + 1}::bigint, $${2 * i + 2}::${type})`).join(', ');
      await q(
        `INSERT INTO ${this.names.projected} (face_id, proj) VALUES ${values} ON ` +
          'CONFLICT (face_id) DO UPDATE SET proj = EXCLUDED.proj',
        chunk.flatMap((f, i) => [
          f.id,
          vectorParam(proj.subarray((s + i) * components, (s + i + 1) * components), 'fp32'),
        ]),
      );
    }
  }

  /** The stored projection's projector (opened once per generation), or undefined without an approximate index. */
  private async currentProjector(q: Query): Promise<{ generation: string; projector: Projector } | undefined> {
    const g = await q<{ generation: string }>(`SELECT generation FROM ${this.names.projection} WHERE id = 1`);
    const generation = g.rows[0]?.generation;
    if (generation === undefined) return undefined;
    if (this.approx?.generation === generation) return this.approx;
    const r = await q<ProjectionRow>(
      'SELECT dim, components, fitted_on, total_variance, mean, basis, ' +
        `variances FROM ${this.names.projection} WHERE id = 1`,
    );
    const row = r.rows[0];
    let projection;
    try {
      projection = decodeProjectionRow(row);
    } catch (err) {
      throw this.error(`the approximate index is damaged: ${(err as Error).message}`, err);
    }
    const old = this.approx;
    this.approx = { generation, projector: await openProjector(projection) };
    await old?.projector.close();
    return this.approx;
  }

  async add(faces: readonly NewFace[]): Promise<AddOutcome[]> {
    const meta = await this.requireMeta();
    if (faces.length === 0) return [];
    return this.run(
      'write',
      async (q) => {
        const inserted = await this.insertRows(q, meta, faces, true);
        const others = [...new Set(faces.map((f) => f.contentHash).filter((h) => !inserted.has(h)))];
        const prev = new Map<string, { identity: string; source: string }>();
        if (others.length > 0) {
          const r = await q<{ content_hash: string; identity: string; source: string }>(
            `SELECT content_hash, identity, source FROM ${this.names.faces} WHERE content_hash = ANY($1)`,
            [others],
          );
          for (const x of r.rows) prev.set(x.content_hash, x);
        }
        const first = new Set<string>();
        return faces.map((f): AddOutcome => {
          const id = inserted.get(f.contentHash);
          if (id !== undefined && !first.has(f.contentHash)) {
            first.add(f.contentHash);
            return { status: 'added', id };
          }
          const p = prev.get(f.contentHash) ?? {
            identity: f.identity,
            source: faces.find((g) => g.contentHash === f.contentHash)!.source,
          };
          return { status: 'duplicate', identity: p.identity, source: p.source };
        });
      },
      `adding ${faces.length} face${faces.length === 1 ? '' : 's'}`,
    );
  }

  /** Adds many faces in one transaction, without reporting duplicates (which are skipped): bulk fills. */
  async addMany(faces: readonly NewFace[]): Promise<void> {
    const meta = await this.requireMeta();
    if (faces.length === 0) return;
    await this.run('write', (q) => this.insertRows(q, meta, faces, false), `adding ${faces.length} faces`);
  }

  /**
   * Loads faces in bulk, all in one transaction (all stored, or none): the approximate index, when the gallery has
   * one, is dropped first and built again once, after the rows are in (measured much faster than keeping it up to
   * date row by row). Returns how many faces were new. Searches wait until the load commits.
   */
  async load(batches: Iterable<readonly NewFace[]> | AsyncIterable<readonly NewFace[]>): Promise<number> {
    const meta = await this.requireMeta();
    return this.run(
      'write',
      async (q) => {
        await this.lock(q);
        // An index of an earlier layout is built again in today's.
        const hadIndex = (await this.annIndexLayout(q)) !== undefined;
        if (hadIndex) await q(`DROP INDEX ${quoteIdent(this.names.schema)}.${ANN_INDEX}`);
        let added = 0;
        for await (const batch of batches) added += (await this.insertRows(q, meta, batch, true)).size;
        if (hadIndex) await this.buildAnnIndex(q, meta);
        return added;
      },
      'loading faces',
      false, // the batches may be a generator that cannot be read twice: a failed load is the caller's to repeat
    );
  }

  /**
   * The approximate index's layout: "current" (this version's, see WALK_COMPONENTS), "earlier" (another version's, such
   * as HNSW over the whole projection: searches would not use it, so it is built again), or undefined (none).
   */
  private async annIndexLayout(q: Query): Promise<'current' | 'earlier' | undefined> {
    const r = await q<{ def: string; c: number | null }>(
      `SELECT i.indexdef AS def, (SELECT components FROM ${this.names.projection} WHERE id = 1) AS c
         FROM pg_indexes i WHERE i.schemaname = $1 AND i.tablename = 'vggface_projected' AND i.indexname = $2`,
      [this.names.schema, ANN_INDEX],
    );
    if (r.rows.length === 0) return undefined;
    const { def, c } = r.rows[0];
    return c !== null && isCurrentIndex(def, walkComponents(c)) ? 'current' : 'earlier';
  }

  private async projectionExists(q: Query): Promise<boolean> {
    return (await q(`SELECT 1 FROM ${this.names.projection} WHERE id = 1`)).rows.length === 1;
  }

  /** Whether the gallery has the approximate-search index. */
  async hasAnnIndex(): Promise<boolean> {
    if (!(await this.meta())) return false;
    return this.run(
      'read',
      async (q) => (await this.projectionExists(q)) && (await this.annIndexLayout(q)) === 'current',
      'looking up the approximate index',
    );
  }

  private async buildAnnIndex(q: Query, meta: GalleryMeta, name = ANN_INDEX): Promise<void> {
    // As long as it takes; with memory for the graph (pgvector builds far slower once it outgrows
    // maintenance_work_mem).
    await q('SET LOCAL statement_timeout = 0');
    // count(*), not the planner's estimate: that is stale right after a load (-1 for a table never analysed).
    const rows = Number((await q<{ n: string }>(`SELECT count(*) AS n FROM ${this.names.projected}`)).rows[0].n);
    const components = Number(
      (await q<{ c: number }>(`SELECT components AS c FROM ${this.names.projection} WHERE id = 1`)).rows[0]?.c ??
        meta.dimension,
    );
    const walk = walkComponents(components);
    // The graph in memory: each node's halfvec plus about 400 bytes of neighbour lists (m = 16), with a margin.
    const wanted = Math.min(8192, Math.max(64, Math.ceil((Math.max(rows, 0) * (walk * 2 + 400) * 1.3) / 2 ** 20)));
    const current = Number(
      (
        await q<{ mb: string }>(
          `SELECT (setting::bigint * 1024 / 1048576) AS mb FROM pg_settings WHERE name = 'maintenance_work_mem'`,
        )
      ).rows[0].mb,
    );
    if (wanted > current) await q(`SET LOCAL maintenance_work_mem = '${wanted}MB'`);
    const ext = this.names.ext;
    await q(
      `CREATE INDEX IF NOT EXISTS ${name} ON ${this.names.projected} ` +
        `USING hnsw ((${walkKey(ext, 'proj', walk)}) ${ext}.halfvec_l2_ops) ` +
        `WITH (m = ${HNSW_BUILD.m}, ef_construction = ${HNSW_BUILD.ef_construction})`,
    );
  }

  /**
   * Fits the projection on a random sample of the faces and stores every face's projection (in the build's
   * transaction, which holds the schema lock: adds wait for it).
   */
  private async buildProjection(q: Query, meta: GalleryMeta, options: AnnIndexOptions): Promise<void> {
    const { components, sample } = annSettings(this.location, meta.dimension, options);
    const ids = (
      await q<{ id: string }>(`SELECT id FROM ${this.names.faces} ORDER BY random() LIMIT $1`, [sample])
    ).rows.map((r) => Number(r.id));
    if (ids.length < 2) throw this.error(`the approximate index needs at least 2 faces, the gallery has ${ids.length}`);
    const x = new Float32Array(ids.length * meta.dimension);
    for (let s = 0; s < ids.length; s += BUILD_BATCH) {
      const part = ids.slice(s, s + BUILD_BATCH);
      const r = await q<{ embedding: Buffer }>(
        `SELECT ${this.sendVector(meta)} AS embedding FROM ${this.names.faces} WHERE id = ANY($1::bigint[])`,
        [part],
      );
      r.rows.forEach((row, i) => x.set(readVectorBinary(row.embedding, meta), (s + i) * meta.dimension));
      options.onProgress?.('sample', s + part.length, ids.length);
    }
    options.onProgress?.('fit', 0, 1);
    const projection = await fitGalleryProjection(x, ids.length, meta.dimension, components);
    options.onProgress?.('fit', 1, 1);
    const stored = encodeProjection(projection);
    const generation = newGeneration();
    await q(`DELETE FROM ${this.names.projected}`);
    await q(
      `ALTER TABLE ${this.names.projected} ALTER COLUMN proj TYPE ${this.names.ext}.vector(${projection.components})`,
    );
    await q(`DELETE FROM ${this.names.projection}`);
    await q(
      `INSERT INTO ${this.names.projection} (id, generation, dim, components, fitted_on, ` +
        'total_variance, mean, basis, variances) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8)',
      [
        generation,
        projection.dim,
        projection.components,
        projection.fittedOn,
        projection.totalVariance,
        stored.mean,
        stored.basis,
        stored.variances,
      ],
    );
    const approx = (await this.currentProjector(q))!;
    const total = Number((await q<{ n: string }>(`SELECT count(*) AS n FROM ${this.names.faces}`)).rows[0].n);
    let done = 0;
    for (let after = 0; ; ) {
      const r = await q<{ id: string; embedding: Buffer }>(
        `SELECT id, ${this.sendVector(meta)} AS embedding FROM ${this.names.faces} WHERE id > $1 ORDER BY id LIMIT $2`,
        [after, BUILD_BATCH],
      );
      if (r.rows.length === 0) break;
      const faces = r.rows.map((row) => ({ id: Number(row.id), descriptor: readVectorBinary(row.embedding, meta) }));
      await this.insertProjections(q, approx.projector, faces);
      after = faces[faces.length - 1].id;
      done += faces.length;
      options.onProgress?.('project', done, total);
    }
  }

  /**
   * Builds the approximate-search index unless the gallery has it in this version's layout (it blocks adds, not
   * searches, while it builds: about 33 minutes at a million faces on 2 cores); from then on every add keeps it up to
   * date. Returns whether it was built.
   */
  async ensureAnnIndex(options: AnnIndexOptions = {}): Promise<boolean> {
    const meta = await this.requireMeta();
    const { sample } = annSettings(this.location, meta.dimension, options);
    const outcome = await this.run(
      'write',
      async (q): Promise<'built' | 'exists' | 'too few'> => {
        await this.lock(q);
        const fitted = (await q<{ n: number }>(`SELECT fitted_on AS n FROM ${this.names.projection} WHERE id = 1`))
          .rows[0]?.n;
        const count = async () =>
          Number((await q<{ n: string }>(`SELECT count(*) AS n FROM ${this.names.faces}`)).rows[0].n);
        // A projection fitted on a small gallery that has grown since is fitted again (see needsRefit).
        let faces: number | undefined;
        const refit = fitted !== undefined && fitted < sample && needsRefit(fitted, (faces = await count()), sample);
        const layout = await this.annIndexLayout(q);
        if (fitted !== undefined && !refit && layout === 'current') return 'exists';
        faces ??= await count();
        if (faces < 2) return 'too few';
        await q('SET LOCAL statement_timeout = 0');
        const schema = quoteIdent(this.names.schema);
        if (fitted === undefined || refit) {
          if (layout !== undefined) await q(`DROP INDEX ${schema}.${ANN_INDEX}`);
          await this.buildProjection(q, meta, options);
          options.onProgress?.('index', 0, 1);
          await this.buildAnnIndex(q, meta);
        } else {
          options.onProgress?.('index', 0, 1);
          // An index of an earlier layout (or none): today's is built beside it and takes its name at the end, so
          // that a process already searching keeps reading the projections meanwhile (CREATE INDEX takes a SHARE
          // lock; DROP INDEX an exclusive one, which held for the whole build would fail its reads on lock_timeout).
          const next = `${ANN_INDEX}_next`;
          await q(`DROP INDEX IF EXISTS ${schema}.${next}`);
          await this.buildAnnIndex(q, meta, next);
          if (layout !== undefined) await q(`DROP INDEX ${schema}.${ANN_INDEX}`);
          await q(`ALTER INDEX ${schema}.${next} RENAME TO ${ANN_INDEX}`);
        }
        options.onProgress?.('index', 1, 1);
        return 'built';
      },
      'building the approximate index',
    );
    // Fewer than 2 faces: nothing to fit a projection on, and approximate search is exact until there are more.
    this.annIndexKnown = outcome !== 'too few';
    return outcome === 'built';
  }

  async remove(identity: string): Promise<number> {
    if (!(await this.meta())) return 0;
    return this.run(
      'write',
      async (q) => (await q(`DELETE FROM ${this.names.faces} WHERE identity = $1`, [identity])).rowCount ?? 0,
      'removing an identity',
    );
  }

  async list(): Promise<IdentitySummary[]> {
    if (!(await this.meta())) return [];
    const r = await this.run(
      'read',
      (q) =>
        q<{ identity: string; faces: string }>(
          `SELECT identity, count(*) AS faces FROM ${this.names.faces} GROUP BY identity ORDER BY identity`,
        ),
      'listing identities',
    );
    return r.rows.map((x) => ({ identity: x.identity, faces: Number(x.faces) }));
  }

  async count(): Promise<number> {
    if (!(await this.meta())) return 0;
    return Number(
      (
        await this.run(
          'read',
          (q) => q<{ n: string }>(`SELECT count(*) AS n FROM ${this.names.faces}`),
          'counting faces',
        )
      ).rows[0].n,
    );
  }

  /**
   * What a search measures with: the query as a parameter of the gallery's type, and pgvector's operator for `metric`.
   */
  private async queryDistance(query: Float32Array, metric: Metric): Promise<{ type: string; op: string; q: Buffer }> {
    const meta = await this.requireMeta();
    return {
      type: this.vectorType(meta),
      op: `OPERATOR(${this.names.ext}.${metric === 'euclidean' ? '<->' : '<=>'})`,
      q: vectorParam(query, meta.precision),
    };
  }

  /**
   * Nearest faces (not grouped by identity): exact, or through the binary HNSW index with `candidates`
   * re-ranked exactly. Distances are pgvector's (cosine distance, or L2 for euclidean), mapped to `metric`.
   */
  async nearestFaces(
    query: Float32Array,
    options: { k: number; metric: Metric; approximate?: boolean; candidates?: number },
  ): Promise<{ id: number; identity: string; source: string; distance: number }[]> {
    const { type, op, q } = await this.queryDistance(query, options.metric);
    const rows = await this.withCandidates(query, options, (run, candidates, extra) =>
      run<{ id: string; identity: string; source: string; d: number }>(
        `SELECT id, identity, source, embedding ${op} $1::${type} AS d ` +
          `FROM ${this.candidateSource(candidates)} ORDER BY d, id LIMIT $2`,
        [q, options.k, ...extra],
      ),
    );
    return rows.rows.map((r) => ({
      id: Number(r.id),
      identity: r.identity,
      source: r.source,
      distance: mapDistance(Number(r.d), options.metric),
    }));
  }

  /** Runs a search: exact, or with the candidates the approximate index proposes (the projected query is $3). */
  private async withCandidates<T>(
    query: Float32Array,
    options: { approximate?: boolean; candidates?: number },
    search: (q: Query, candidates: CandidateWalk | undefined, extra: unknown[]) => Promise<T>,
  ): Promise<T> {
    if (!options.approximate) return this.run('read', (q) => search(q, undefined, []), 'searching');
    const candidates = checkCandidates(this.location, options.candidates, 'postgres');
    if (!this.annIndexKnown) await this.ensureAnnIndex();
    if (!this.annIndexKnown) return this.run('read', (q) => search(q, undefined, []), 'searching');
    return this.run(
      'read',
      async (q) => {
        const approx = await this.currentProjector(q);
        if (!approx) throw this.error('the approximate index was removed while searching: search again to build it');
        const walk = efSearch(candidates);
        await q(`SET LOCAL hnsw.ef_search = ${walk}`);
        const projected = await approx.projector.project(query, 1);
        return search(q, { count: candidates, components: approx.projector.projection.components, walk }, [
          vectorParam(projected, 'fp32'),
        ]);
      },
      'searching',
    );
  }

  async search(query: Float32Array, options: StoreSearchOptions): Promise<IdentityMatch[]> {
    const { type, op, q } = await this.queryDistance(query, options.metric);
    const r = await this.withCandidates(query, options, (run, candidates, extra) =>
      run<{ id: string; identity: string; source: string; d: number }>(
        `SELECT * FROM (SELECT DISTINCT ON (identity) id, identity, source, embedding ${op} $1::${type} AS d
                          FROM ${this.candidateSource(candidates)} ORDER BY identity, d, id) best
         ORDER BY d, identity LIMIT $2`,
        [q, options.k, ...extra],
      ),
    );
    return r.rows.map((x) => ({
      identity: x.identity,
      distance: mapDistance(Number(x.d), options.metric),
      face: { id: Number(x.id), identity: x.identity, source: x.source },
    }));
  }

  /**
   * The rows a search ranks: every face (exact), or the `candidates` whose projections are nearest the query's
   * ($3), through the HNSW index (approximate; the caller re-ranks them exactly).
   */
  private candidateSource(candidates: CandidateWalk | undefined): string {
    const n = this.names;
    if (!candidates) return n.faces;
    const ext = n.ext;
    const walk = walkComponents(candidates.components);
    const query = `$3::${ext}.vector(${candidates.components})`;
    // The walk's rows (hnsw.ef_search of them), re-ranked by the whole projection.
    const nearest =
      `FROM (SELECT face_id, proj FROM ${n.projected} ORDER BY ${walkKey(ext, 'proj', walk)} ` +
      `OPERATOR(${ext}.<->) ${walkKey(ext, query, walk)} LIMIT ${candidates.walk}) w ` +
      `ORDER BY proj OPERATOR(${ext}.<->) ${query} LIMIT ${candidates.count}`;
    return `(SELECT f.id, f.identity, f.source, f.embedding
               FROM (SELECT face_id ${nearest}) c
               JOIN ${n.faces} f ON f.id = c.face_id) c`;
  }

  private async requireMeta(): Promise<GalleryMeta> {
    const meta = await this.meta();
    if (!meta) throw this.error('the gallery is empty: add faces first with "vggface gallery add"');
    return meta;
  }

  async rekey(oldKey: string, newKey: string): Promise<boolean> {
    if (!(await this.meta())) return false;
    // The WHERE on the old value makes it safe to repeat, and leaves a key another session changed first as it is.
    const r = await this.run(
      'write',
      (q) => q(`UPDATE ${this.names.meta} SET value = $1 WHERE key = 'model_key' AND value = $2`, [newKey, oldKey]),
      'changing the model key',
    );
    this.cachedMeta = undefined; // changed here or elsewhere: read it again
    return r.rowCount === 1;
  }

  /** Ends the connection (at once, even with a statement running or the server gone) and stops reconnecting. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    this.setState('closed');
    await this.approx?.projector.close();
    this.approx = undefined;
    if (!client) return;
    client.removeAllListeners('end');
    const ended = client.end().catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), 2000)));
    if ((await Promise.race([ended, late])) === 'late')
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    clearTimeout(timer);
  }
}

function namesFor(schema: string, extSchema: string): Names {
  const s = quoteIdent(schema);
  return {
    schema,
    meta: `${s}.vggface_meta`,
    faces: `${s}.vggface_faces`,
    projection: `${s}.vggface_projection`,
    projected: `${s}.vggface_projected`,
    ext: quoteIdent(extSchema),
    extSchema,
  };
}

/** A vector or halfvec in pgvector's binary form (vector_send: int16 dimension, int16 unused, big-endian values). */
function readVectorBinary(b: Buffer, meta: GalleryMeta): Float32Array {
  const dim = b.readInt16BE(0);
  if (dim !== meta.dimension)
    throw new Error(`a stored descriptor has ${dim} dimensions, the gallery ${meta.dimension}`);
  // a copy at offset 0 (aligned), swapped to native order
  const body = Buffer.from(new Uint8Array(b.subarray(4)).buffer);
  if (meta.precision === 'fp16') {
    if (LITTLE_ENDIAN) body.swap16();
    return decodeHalf(new Uint16Array(body.buffer, body.byteOffset, dim));
  }
  if (LITTLE_ENDIAN) body.swap32();
  return new Float32Array(body.buffer, body.byteOffset, dim);
}

/** pgvector gives cosine distance (or L2 for euclidean); the other metrics follow from the cosine. */
function mapDistance(d: number, metric: Metric): number {
  if (metric === 'cosine' || metric === 'euclidean') return d;
  return distanceFromSums({ dot: 1 - d, aa: 1, bb: 1 }, metric);
}
