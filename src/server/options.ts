/** The server's settings, their defaults, and the checks that run before anything starts. */
import { availableParallelism } from 'node:os';
import { readFile } from 'node:fs/promises';
import { fileError, invalidParameterError, usageError } from '../errors.js';
import { METRICS, type Metric } from '../distance/distance.js';
import { PRECISIONS, type Precision } from '../gallery/scorer.js';
import { DEFAULT_CANDIDATES_TEXT, MAX_CANDIDATES } from '../gallery/approximate.js';
import {
  DESCRIBE_OPTIONS,
  MAX_THREADS,
  parseOption,
  type BooleanOption,
  type OneOfOption,
  type OptionSpec,
  type RangeOption,
  type StringOption,
} from '../options.js';
import { envValue } from '../util/env.js';
import * as check from '../validate.js';
import type { LoadOptions } from '../vggface.js';

/**
 * Which routes need the bearer token: `writes` (those that change the gallery), `all` (all but / and /healthz), `none`.
 */
export type AuthMode = 'writes' | 'all' | 'none';
export const AUTH_MODES: readonly AuthMode[] = ['writes', 'all', 'none'];

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  workers: 1,
  batchSize: 8,
  queueSize: 32,
  /** Multipart uploads are streamed into one buffer that moves to the worker: 32 MiB of photos per request. */
  maxBodyBytes: 32 * 1024 * 1024,
  /**
   * A JSON body is parsed on the event loop, whole, and its base64 strings are copied to the worker: measured
   * here (sharp 0.35, Node 20, this 2-core machine), JSON.parse took 2 ms for 2 MiB, 8 ms for 4 MiB, 15 ms for
   * 8 MiB and 96 ms for 31 MiB, and copying a 31 MiB string to the worker 87 ms more; six concurrent 31 MB bodies
   * held /healthz up to 320 ms. At 2 MiB (1.5 MB of image) six bodies at once stay within /healthz's 50 ms:
   * JSON is for face crops and small images, multipart for photos.
   */
  maxJsonBytes: 2 * 1024 * 1024,
  maxImages: 16,
  /** 40 MP: any phone or camera photo; a decoded image of that size is 120 MB. */
  maxPixels: 40_000_000,
  timeoutMs: 30_000,
  auth: 'writes' as AuthMode,
  metric: 'cosine' as Metric,
  storage: 'fp32' as Precision,
} as const;

export interface ServeOptions {
  readonly host: string;
  /** 0 picks a free port (the listening address is printed and returned). */
  readonly port: number;
  /** How the descriptor model is loaded in each worker (weights, preprocessing, precision, cache). */
  readonly load: LoadOptions;
  /** YuNet ONNX file; default $VGGFACE_DETECTOR_MODEL, else downloaded into the cache. */
  readonly detectorModel?: string;
  /** Inference worker threads, each holding its own copy of the model. */
  readonly workers: number;
  /** ONNX Runtime threads per worker; default: the cores divided among the workers. */
  readonly threadsPerWorker: number;
  /** Most faces in one inference call. */
  readonly batchSize: number;
  /** Requests waiting for a worker beyond which new ones are answered 503. */
  readonly queueSize: number;
  readonly maxBodyBytes: number;
  /** The largest JSON body (at most maxBodyBytes); default {@link SERVE_DEFAULTS}.maxJsonBytes. */
  readonly maxJsonBytes?: number;
  readonly maxImages: number;
  readonly maxPixels: number;
  /** From the request's arrival to its answer, queue included. */
  readonly timeoutMs: number;
  readonly auth: AuthMode;
  /** Required unless auth is `none`: printable, without whitespace (an Authorization header could not carry it). */
  readonly token?: string;
  /**
   * Host names the server answers to besides localhost and its listen address (DNS rebinding protection: other
   * Host headers are answered 421): the names a reverse proxy or DNS gives it.
   */
  readonly allowedHosts?: readonly string[];
  /** Gallery location: a SQLite file or a postgres:// URL. */
  readonly db: string;
  /**
   * Search through the approximate index (PostgreSQL: built at start if missing), re-ranking `candidates` (default
   * DEFAULT_CANDIDATES: 30 in SQLite, 50 in PostgreSQL).
   */
  readonly approximate?: boolean;
  readonly candidates?: number;
  /** Descriptor storage of a new gallery. */
  readonly storage: Precision;
  /** The metric requests use when they name none, and the one `threshold` is for. */
  readonly metric: Metric;
  /** Same person when distance <= threshold (for `metric`); default: the model's calibrated threshold. */
  readonly threshold?: number;
  /** fastify (pino) log level; logs go to stderr. */
  readonly logLevel: string;
  /** A folder of converted `.onnx` models, served read-only under /models/NAME.onnx for the browser page (/local). */
  readonly models?: string;
}

export const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Body limits (--max-body, --max-json-body, `maxBodyBytes`, `maxJsonBytes`), in bytes: 1 KiB to 2 GiB. */
const BODY_BYTES = { kind: 'integer', min: 1024, max: 2 ** 31, rangeText: '1KiB..2GiB' } as const;

export interface ServeOptionSpecs {
  readonly host: StringOption<string>;
  readonly port: RangeOption<number>;
  readonly detectorModel: StringOption;
  readonly workers: RangeOption<number>;
  readonly threadsPerWorker: RangeOption<undefined>;
  readonly batchSize: RangeOption<number>;
  readonly queueSize: RangeOption<number>;
  readonly maxBodyBytes: RangeOption<number>;
  readonly maxJsonBytes: RangeOption<number>;
  readonly maxImages: RangeOption<number>;
  readonly maxPixels: RangeOption<number>;
  readonly timeoutMs: RangeOption<number>;
  readonly auth: OneOfOption<AuthMode, AuthMode>;
  readonly db: StringOption;
  readonly approximate: BooleanOption;
  readonly candidates: RangeOption<undefined>;
  readonly storage: OneOfOption<Precision, Precision>;
  readonly metric: OneOfOption<Metric, Metric>;
  readonly threshold: RangeOption<undefined>;
  readonly logLevel: OneOfOption<string, string>;
  readonly models: StringOption;
}

/**
 * The settings of {@link ServeOptions} that are plain values, defined once for `vggface serve`'s flags (their
 * checks and help) and for {@link checkServeOptions}, which startServer runs for library callers: both accept the
 * same ranges. The flags of the byte sizes and of the time limit take other units (32MiB, seconds) and are
 * converted before these ranges apply.
 */
export const SERVE_OPTIONS: ServeOptionSpecs = {
  host: {
    kind: 'string',
    name: 'host',
    flag: '--host <address>',
    default: SERVE_DEFAULTS.host,
    description: 'address to listen on',
    note: '0.0.0.0 for every interface: put TLS in front',
  },
  port: {
    kind: 'integer',
    name: 'port',
    flag: '--port <n>',
    min: 0,
    max: 65535,
    default: SERVE_DEFAULTS.port,
    description: 'TCP port',
    note: '0: any free port; the address is printed',
  },
  detectorModel: {
    kind: 'string',
    name: 'detectorModel',
    flag: '--detector-model <file>',
    default: undefined,
    defaultText: '$VGGFACE_DETECTOR_MODEL, else downloaded into the cache',
    description: 'YuNet ONNX file',
  },
  workers: {
    kind: 'integer',
    name: 'workers',
    flag: '--workers <n>',
    min: 1,
    max: 64,
    default: SERVE_DEFAULTS.workers,
    description: 'inference worker threads, each with its own copy of the model',
  },
  // The CLI takes it from the model options' --threads, with the same range.
  threadsPerWorker: {
    kind: 'integer',
    name: 'threadsPerWorker',
    min: 1,
    max: MAX_THREADS,
    default: undefined,
    defaultText: 'the cores divided among the workers',
    description: 'ONNX Runtime threads per worker',
  },
  batchSize: {
    ...DESCRIBE_OPTIONS.batchSize,
    default: SERVE_DEFAULTS.batchSize,
    description: 'most faces per inference call',
  },
  queueSize: {
    kind: 'integer',
    name: 'queueSize',
    flag: '--queue <n>',
    min: 0,
    max: 100_000,
    default: SERVE_DEFAULTS.queueSize,
    description: 'requests that may wait for a worker',
    note: 'beyond, 503 with Retry-After',
  },
  maxBodyBytes: {
    ...BODY_BYTES,
    name: 'maxBodyBytes',
    flag: '--max-body <size>',
    default: SERVE_DEFAULTS.maxBodyBytes,
    defaultText: '32MiB',
    description: 'largest request body (bytes, or with k/m/g: 32m)',
  },
  maxJsonBytes: {
    ...BODY_BYTES,
    name: 'maxJsonBytes',
    flag: '--max-json-body <size>',
    default: SERVE_DEFAULTS.maxJsonBytes,
    defaultText: '2MiB',
    description: 'largest JSON body: JSON is parsed on the event loop, so send photos as multipart',
  },
  maxImages: {
    kind: 'integer',
    name: 'maxImages',
    flag: '--max-images <n>',
    min: 1,
    max: 1000,
    default: SERVE_DEFAULTS.maxImages,
    description: 'most images in one request',
  },
  maxPixels: {
    ...DESCRIBE_OPTIONS.maxPixels,
    default: SERVE_DEFAULTS.maxPixels,
    description: 'largest image, in pixels, refused from its header before decoding',
  },
  timeoutMs: {
    kind: 'integer',
    name: 'timeoutMs',
    flag: '--timeout <seconds>',
    // 1 ms to an hour; the flag takes seconds.
    min: 1,
    max: 3_600_000,
    rangeText: '0.001..3600',
    default: SERVE_DEFAULTS.timeoutMs,
    defaultText: String(SERVE_DEFAULTS.timeoutMs / 1000),
    description: 'time limit of a request, queue included (then 503)',
  },
  auth: {
    kind: 'oneOf',
    name: 'auth',
    flag: '--auth <mode>',
    values: AUTH_MODES,
    default: SERVE_DEFAULTS.auth,
    description: 'who needs the token',
  },
  db: {
    kind: 'string',
    name: 'db',
    flag: '--db <location>',
    default: undefined,
    defaultText: '$VGGFACE_GALLERY, else ~/.local/share/vggface/gallery.db',
    description:
      'gallery: a SQLite file, or postgres://user@host/db (password from $PGPASSWORD or ~/.pgpass; URL parameters ' +
      'schema, sslmode, statement_timeout, lock_timeout: see the README)',
  },
  approximate: {
    kind: 'boolean',
    name: 'approximate',
    flag: '--approximate',
    default: false,
    description:
      'search the approximate index (a PCA projection of the descriptors; built at start in PostgreSQL, at the ' +
      'first search in SQLite) and re-rank its candidates exactly',
  },
  candidates: {
    kind: 'integer',
    name: 'candidates',
    flag: '--candidates <n>',
    min: 1,
    max: MAX_CANDIDATES,
    default: undefined,
    description: `with --approximate: candidates to re-rank (default ${DEFAULT_CANDIDATES_TEXT})`,
  },
  storage: {
    kind: 'oneOf',
    name: 'storage',
    flag: '--storage <p>',
    values: PRECISIONS,
    default: SERVE_DEFAULTS.storage,
    description: 'descriptor storage of a new gallery',
  },
  metric: {
    kind: 'oneOf',
    name: 'metric',
    flag: '--metric <metric>',
    values: METRICS,
    default: SERVE_DEFAULTS.metric,
    description: 'the metric of requests that name none',
  },
  threshold: {
    kind: 'number',
    name: 'threshold',
    flag: '--threshold <t>',
    min: 0,
    max: Number.MAX_VALUE,
    default: undefined,
    defaultText: "the calibrated threshold for this model, or deepface's in deepface mode",
    description: 'same person when distance <= t, for --metric',
  },
  logLevel: {
    kind: 'oneOf',
    name: 'logLevel',
    flag: '--log-level <level>',
    values: LOG_LEVELS,
    default: 'warn',
    description: 'request and error log on stderr',
  },
  models: {
    kind: 'string',
    name: 'models',
    flag: '--models <dir>',
    default: undefined,
    description:
      'serve the converted .onnx models in this folder read-only at /models/NAME.onnx, for the page at /local ' +
      'that runs everything in the browser',
  },
};

/** Settings a caller may leave out: the server then applies its default, or goes without. */
const OPTIONAL_SETTINGS: ReadonlySet<keyof ServeOptions> = new Set<keyof ServeOptions>([
  'detectorModel',
  'maxJsonBytes',
  'approximate',
  'candidates',
  'threshold',
  'models',
]);

/**
 * Checks the options of startServer before anything starts, with the ranges of `vggface serve`'s flags
 * ({@link SERVE_OPTIONS}), and returns them with the values checked (a number given as a numeric string becomes
 * a number, as the library's other options do). Errors name the option: `Expected an integer between 0 and 65535
 * for port but received number 70000`.
 */
export function checkServeOptions(options: ServeOptions): ServeOptions {
  if (!check.isPlainObject(options)) throw invalidParameterError('options', 'an object', options);
  const given = options as unknown as Readonly<Record<string, unknown>>;
  const checked: Record<string, unknown> = { ...given };
  for (const [key, spec] of Object.entries(SERVE_OPTIONS) as [keyof ServeOptions, OptionSpec][]) {
    if (given[key] === undefined && OPTIONAL_SETTINGS.has(key)) continue;
    checked[key] = parseOption(spec, given[key], key);
  }
  if (!check.isPlainObject(options.load))
    throw invalidParameterError('load', 'an object of load options', options.load);
  if (options.token !== undefined && typeof options.token !== 'string')
    throw invalidParameterError('token', 'a string', options.token);
  if (options.allowedHosts !== undefined) {
    if (!Array.isArray(options.allowedHosts))
      throw invalidParameterError('allowedHosts', 'an array of host names', options.allowedHosts);
    options.allowedHosts.forEach((host, i) => check.nonEmptyString(`allowedHosts[${i}]`, host));
  }
  return checked as unknown as ServeOptions;
}

export function defaultThreadsPerWorker(workers: number): number {
  return Math.max(1, Math.floor(availableParallelism() / workers));
}

/**
 * The bearer token: $VGGFACE_TOKEN, or the first line of a token file (the file wins when both are given).
 * A token is required unless auth is `none`, so a server is never open for writing by accident.
 */
export async function resolveToken(
  auth: AuthMode,
  tokenFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  let token: string | undefined;
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = await readFile(tokenFile, 'utf8');
    } catch (err) {
      throw fileError(tokenFile, err);
    }
    token = text.split(/\r?\n/)[0].trim();
    if (token === '')
      throw usageError(`${tokenFile}: the token file is empty (its first line is the token)`, '--token-file');
  } else {
    const fromEnv = envValue('token', env)?.trim();
    if (fromEnv) token = fromEnv;
  }
  if (auth === 'none') return undefined;
  if (token === undefined) {
    throw usageError(
      `--auth ${auth} needs a token: set VGGFACE_TOKEN or pass --token-file FILE (or --auth none to serve without one)`,
      '--auth',
    );
  }
  checkToken(token, tokenFile === undefined ? 'VGGFACE_TOKEN' : tokenFile);
  return token;
}

/**
 * A bearer token must be one word of printable characters: `Authorization: Bearer <token>` ends the token at the
 * first space, so a token with whitespace could never match (and control characters cannot be in a header).
 */
export function checkToken(token: string, source = 'token'): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
  if (/[\s\u0000-\u001f\u007f]/.test(token)) {
    throw usageError(
      `${source}: the token contains whitespace or a control character, so no Authorization ` +
        'header could carry it: use one word (e.g. openssl rand -hex 16)',
      'token',
    );
  }
}

/** "32MiB", "500k", "1048576": bytes with an optional binary suffix (k, m, g; "b" and "ib" optional). */
export function parseByteSize(name: string, value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(value);
  if (!m)
    throw usageError(
      `Expected a size in bytes (e.g. 33554432, 500k, 32MiB) for ${name} but received ${JSON.stringify(value)}`,
      name,
    );
  const scale = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  const bytes = Math.floor(Number(m[1]) * scale);
  if (bytes < BODY_BYTES.min || bytes > BODY_BYTES.max)
    throw usageError(`Expected a size between 1 KiB and 2 GiB for ${name} but received ${JSON.stringify(value)}`, name);
  return bytes;
}
