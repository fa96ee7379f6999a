import { Command } from 'commander';
import { ensureDetectorModel } from '../../face/detector-model.js';
import { defaultGalleryPath } from '../../gallery/gallery.js';
import { PRECISIONS as STORAGE, type Precision as Storage } from '../../gallery/scorer.js';
import { METRICS, type Metric } from '../../metrics/distance.js';
import {
  AUTH_MODES,
  defaultThreadsPerWorker,
  parseByteSize,
  resolveToken,
  SERVE_DEFAULTS,
  type AuthMode,
  type ServeOptions,
} from '../../server/options.js';
import { startServer } from '../../server/server.js';
import { prioritizeEventLoop } from '../../server/priority.js';
import { defaultCacheDir } from '../../util/paths.js';
import { envValue } from '../../util/env.js';
import * as check from '../../validate.js';
import { ensureOfficialWeights } from '../../weights/official.js';
import type { CommandContext } from '../context.js';
import { detectorDownloadProgress } from '../face-options.js';
import { addModelOptions, modelOptions, type ModelFlags } from '../options.js';

interface ServeFlags extends ModelFlags {
  port: string;
  host: string;
  detectorModel?: string;
  workers: string;
  batch: string;
  queue: string;
  maxBody: string;
  maxJsonBody: string;
  maxImages: string;
  maxPixels: string;
  timeout: string;
  auth: string;
  tokenFile?: string;
  allowedHost?: string[];
  db?: string;
  approximate?: boolean;
  candidates: string;
  storage: string;
  metric: string;
  threshold?: string;
  logLevel: string;
  models?: string;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const d = SERVE_DEFAULTS;

export function serveCommand(ctx: CommandContext): Command {
  const cmd = new Command('serve')
    .summary('an HTTP API and a web page: describe, verify, gallery add and search')
    .description(
      [
        "Serves the model over HTTP until SIGTERM or SIGINT (then it stops accepting, answers the requests in flight, closes the workers and the gallery, and exits 0). The web page is at /, the OpenAPI document at /openapi.json. /local is a page that runs verification and a gallery entirely in the browser (vggface/browser; photos are never uploaded), with the models of --models DIR served at /models/NAME.onnx (read-only, ETag) and the server's YuNet at /detector.onnx; every page is cross-origin isolated (COOP/COEP) so onnxruntime-web gets WebAssembly threads.",
        'Routes: POST /v1/describe, POST /v1/verify, POST /v1/search, POST /v1/gallery/{id}/faces, DELETE /v1/gallery/{id}, GET /v1/gallery, GET /healthz, GET /metrics (Prometheus), GET /openapi.json. Images come as JSON ({"images": [{"data": "<base64>", "name": "a.jpg"}], ...options}) or as multipart/form-data (files in fields named images, options as text fields). Photos are searched for faces as describe and verify do; send "faces": "none" for face crops. Errors are {"error": {"code", "message"}} with status 400, 401, 404, 413, 414, 415, 421 (a Host header that names another server: see --allowed-host), 422, 500, or 503 (queue full or past --timeout, with Retry-After).',
        'Auth: routes that change the gallery need "Authorization: Bearer <token>", the token being $VGGFACE_TOKEN or the first line of --token-file; --auth all requires it on every route but the pages (/, /local), their files, /detector.onnx, /models/* and /healthz; --auth none serves without one. Without a token the server does not start unless --auth none.',
        'Inference (decoding, face detection, the model) runs in worker threads, each holding its own copy of the model (about 1.2 GB for the full fp32 model; --precision int8 is 3.5x faster) and using --threads ONNX Runtime threads (default: the cores divided among the workers); faces of requests that arrive together are described in one call. The gallery (SQLite by default, or postgres://) is searched in a thread of its own.',
      ].join('\n\n'),
    )
    .option('--port <n>', 'TCP port (0: any free port; the address is printed)', String(d.port))
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface: put TLS in front)', d.host)
    .option(
      '--detector-model <file>',
      'YuNet ONNX file (default: $VGGFACE_DETECTOR_MODEL, else downloaded into the cache)',
    )
    .option('--workers <n>', 'inference worker threads, each with its own copy of the model', String(d.workers))
    .option('--batch <n>', 'most faces per inference call', String(d.batchSize))
    .option('--queue <n>', 'requests that may wait for a worker; beyond, 503 with Retry-After', String(d.queueSize))
    .option('--max-body <size>', 'largest request body (bytes, or with k/m/g: 32m)', '32MiB')
    .option(
      '--max-json-body <size>',
      'largest JSON body: JSON is parsed on the event loop, so send photos as multipart',
      '2MiB',
    )
    .option('--max-images <n>', 'most images in one request', String(d.maxImages))
    .option(
      '--max-pixels <n>',
      'largest image, in pixels, refused from its header before decoding',
      String(d.maxPixels),
    )
    .option('--timeout <seconds>', 'time limit of a request, queue included (then 503)', String(d.timeoutMs / 1000))
    .option('--auth <mode>', `who needs the token: ${AUTH_MODES.join(', ')}`, d.auth)
    .option('--token-file <file>', 'file whose first line is the bearer token (instead of $VGGFACE_TOKEN)')
    .option(
      '--allowed-host <name...>',
      'host names to answer to besides localhost and the --host address, e.g. behind a proxy (repeatable; other Host headers get 421, against DNS rebinding)',
    )
    .option(
      '--db <location>',
      'gallery: a SQLite file, or postgres://user@host/db (password from $PGPASSWORD or ~/.pgpass; URL parameters schema, sslmode, statement_timeout, lock_timeout: see the README) (default: $VGGFACE_GALLERY, else ~/.local/share/vggface/gallery.db)',
    )
    .option(
      '--approximate',
      'search the approximate index (a PCA projection of the descriptors; built at start in PostgreSQL, at the first search in SQLite) and re-rank its candidates exactly',
    )
    .option('--candidates <n>', 'with --approximate: candidates to re-rank (1-1000)', '200')
    .option('--storage <p>', `descriptor storage of a new gallery: ${STORAGE.join(' or ')}`, d.storage)
    .option('--metric <metric>', `the metric of requests that name none: ${METRICS.join(', ')}`, d.metric)
    .option(
      '--threshold <t>',
      "same person when distance <= t, for --metric (default: the calibrated threshold for this model, or deepface's in deepface mode)",
    )
    .option(
      '--models <dir>',
      'serve the converted .onnx models in this folder read-only at /models/NAME.onnx, for the page at /local that runs everything in the browser',
    )
    .option('--log-level <level>', `request and error log on stderr: ${LOG_LEVELS.join(', ')}`, 'warn');
  addModelOptions(cmd);
  return cmd.action(async (flags: ServeFlags) => {
    const workers = check.integer('--workers', flags.workers, 1, 64);
    const auth = check.oneOf('--auth', flags.auth, AUTH_MODES) as AuthMode;
    const metric = check.oneOf('--metric', flags.metric, METRICS) as Metric;
    const load = modelOptions(flags);
    const cacheDir = load.cacheDir ?? defaultCacheDir();
    const partial = {
      host: check.nonEmptyString('--host', flags.host),
      port: check.integer('--port', flags.port, 0, 65535),
      workers,
      threadsPerWorker: load.threads ?? defaultThreadsPerWorker(workers),
      batchSize: check.integer('--batch', flags.batch, 1, 256),
      queueSize: check.integer('--queue', flags.queue, 0, 100_000),
      maxBodyBytes: parseByteSize('--max-body', flags.maxBody),
      maxJsonBytes: parseByteSize('--max-json-body', flags.maxJsonBody),
      maxImages: check.integer('--max-images', flags.maxImages, 1, 1000),
      maxPixels: check.integer('--max-pixels', flags.maxPixels, 1, Number.MAX_SAFE_INTEGER),
      timeoutMs: Math.max(1, Math.round(check.number('--timeout', flags.timeout, 0.001, 3600) * 1000)),
      auth,
      allowedHosts: flags.allowedHost ?? [],
      db: flags.db ?? defaultGalleryPath(),
      approximate: flags.approximate ?? false,
      candidates: check.integer('--candidates', flags.candidates, 1, 1000),
      storage: check.oneOf('--storage', flags.storage, STORAGE) as Storage,
      metric,
      threshold:
        flags.threshold === undefined ? undefined : check.number('--threshold', flags.threshold, 0, Number.MAX_VALUE),
      logLevel: check.oneOf('--log-level', flags.logLevel, LOG_LEVELS),
      models: flags.models,
    };
    const token = await resolveToken(auth, flags.tokenFile);
    // Downloads happen here, with progress, before the workers start (they get files, not callbacks).
    const detectorModel = await ensureDetectorModel({
      model: flags.detectorModel,
      cacheDir,
      onProgress: detectorDownloadProgress(),
    });
    const weights =
      load.weights ??
      envValue('weights') ??
      (await ensureOfficialWeights({ cacheDir, onProgress: load.onDownloadProgress }));
    const { onDownloadProgress: _progress, ...plainLoad } = load;
    const options: ServeOptions = { ...partial, token, detectorModel, load: { ...plainLoad, weights, cacheDir } };

    const server = await startServer(options, (m) => ctx.stderr.write(`vggface serve: ${m}\n`));
    prioritizeEventLoop(); // this process is the server: /healthz and request parsing before background work
    ctx.stderr.write(
      `vggface serve: listening on ${server.url} (web page ${server.url}/, API ${server.url}/openapi.json; auth ${auth})\n`,
    );
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          ctx.stderr.write(`vggface serve: ${signal} again: exiting now\n`);
          process.exit(1);
        }
        stopping = true;
        ctx.stderr.write(`vggface serve: ${signal}: finishing the requests in flight\n`);
        // Requests end by their deadline at the latest; past it something is stuck.
        const guard = setTimeout(() => {
          ctx.stderr.write('vggface serve: shutdown did not finish in time: exiting\n');
          process.exit(1);
        }, options.timeoutMs + 15_000);
        guard.unref();
        server.close().then(
          () => {
            clearTimeout(guard);
            ctx.stderr.write('vggface serve: stopped\n');
            resolve();
          },
          (err: unknown) => {
            ctx.stderr.write(`vggface serve: error while stopping: ${(err as Error).message}\n`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
  });
}
