/** The server's settings, their defaults, and the checks that run before anything starts. */
import { availableParallelism } from 'node:os';
import { readFile } from 'node:fs/promises';
import { fileError, usageError } from '../errors.js';
import type { Metric } from '../metrics/distance.js';
import type { Precision } from '../gallery/scorer.js';
import type { LoadOptions } from '../vggface.js';

/** Which routes need the bearer token: `writes` (those that change the gallery), `all` (all but / and /healthz), `none`. */
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
  /** Search through the approximate index (PostgreSQL: built at start if missing), re-ranking `candidates` (default 200). */
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
  } else if (env.VGGFACE_TOKEN !== undefined && env.VGGFACE_TOKEN.trim() !== '') {
    token = env.VGGFACE_TOKEN.trim();
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
      `${source}: the token contains whitespace or a control character, so no Authorization header could carry it: use one word (e.g. openssl rand -hex 16)`,
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
  if (bytes < 1024 || bytes > 2 ** 31)
    throw usageError(`Expected a size between 1 KiB and 2 GiB for ${name} but received ${JSON.stringify(value)}`, name);
  return bytes;
}
