import { Command } from 'commander';
import { ensureDetectorModel } from '../../face/detector-model.js';
import { defaultGalleryPath } from '../../gallery/gallery.js';
import {
  defaultThreadsPerWorker,
  parseByteSize,
  resolveToken,
  SERVE_OPTIONS,
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
import {
  addModelOptions,
  flagArgs,
  flagName,
  modelOptions,
  parseFlag,
  resolveFlag,
  type ModelFlags,
} from '../options.js';

interface ServeFlags extends ModelFlags {
  port?: string;
  host?: string;
  detectorModel?: string;
  workers?: string;
  batch?: string;
  queue?: string;
  maxBody?: string;
  maxJsonBody?: string;
  maxImages?: string;
  maxPixels?: string;
  timeout?: string;
  auth?: string;
  tokenFile?: string;
  allowedHost?: string[];
  db?: string;
  approximate?: boolean;
  candidates?: string;
  storage?: string;
  metric?: string;
  threshold?: string;
  logLevel?: string;
  models?: string;
}

const s = SERVE_OPTIONS;

export function serveCommand(ctx: CommandContext): Command {
  const cmd = new Command('serve')
    .summary('an HTTP API and a web page: describe, verify, gallery add and search')
    .description(
      [
        'Serves the model over HTTP until SIGTERM or SIGINT (then it stops accepting, answers the requests in ' +
          'flight, closes the workers and the gallery, and exits 0). The web page is at /, the OpenAPI document at ' +
          '/openapi.json. /local is a page that runs verification and a gallery entirely in the browser ' +
          '(vggface/browser; photos are never uploaded), with the models of --models DIR served at ' +
          "/models/NAME.onnx (read-only, ETag) and the server's YuNet at /detector.onnx; every page is cross-origin " +
          'isolated (COOP/COEP) so onnxruntime-web gets WebAssembly threads.',
        'Routes: POST /v1/describe, POST /v1/verify, POST /v1/search, POST /v1/gallery/{id}/faces, DELETE ' +
          '/v1/gallery/{id}, GET /v1/gallery, GET /healthz, GET /metrics ' +
          '(Prometheus), GET /openapi.json. Images come ' +
          'as JSON ({"images": [{"data": "<base64>", "name": "a.jpg"}], ' +
          '...options}) or as multipart/form-data (files ' +
          'in fields named images, options as text fields). Photos are searched for faces as describe and verify do; ' +
          'send "faces": "none" for face crops. Errors are {"error": {"code", "message"}} with status 400, 401, 404, ' +
          '413, 414, 415, 421 (a Host header that names another server: see --allowed-host), 422, 500, or 503 (queue ' +
          'full or past --timeout, with Retry-After).',
        'Auth: routes that change the gallery need "Authorization: Bearer <token>", the token being ' +
          '$VGGFACE_TOKEN or the first line of --token-file; --auth all requires it on every route but the ' +
          'pages (/, /local), their files, /detector.onnx, /models/* and /healthz; --auth none serves without ' +
          'one. Without a token the server does not start unless --auth none.',
        'Inference (decoding, face detection, the model) runs in worker threads, each holding its own copy of the ' +
          'model (about 1.2 GB for the full fp32 model; --precision int8 is 3.5x faster) and using --threads ONNX ' +
          'Runtime threads (default: the cores divided among the workers); ' +
          'faces of requests that arrive together are ' +
          'described in one call. The gallery (SQLite by default, or postgres://) is searched in a thread of its own.',
      ].join('\n\n'),
    )
    // The flags of SERVE_OPTIONS, with their help from there.
    .option(...flagArgs(s.port))
    .option(...flagArgs(s.host))
    .option(...flagArgs(s.detectorModel))
    .option(...flagArgs(s.workers))
    .option(...flagArgs(s.batchSize))
    .option(...flagArgs(s.queueSize))
    .option(...flagArgs(s.maxBodyBytes))
    .option(...flagArgs(s.maxJsonBytes))
    .option(...flagArgs(s.maxImages))
    .option(...flagArgs(s.maxPixels))
    .option(...flagArgs(s.timeoutMs))
    .option(...flagArgs(s.auth))
    .option('--token-file <file>', 'file whose first line is the bearer token (instead of $VGGFACE_TOKEN)')
    .option(
      '--allowed-host <name...>',
      'host names to answer to besides localhost and the --host address, e.g. behind a proxy ' +
        '(repeatable; other Host headers get 421, against DNS rebinding)',
    )
    .option(...flagArgs(s.db))
    .option(...flagArgs(s.approximate))
    .option(...flagArgs(s.candidates))
    .option(...flagArgs(s.storage))
    .option(...flagArgs(s.metric))
    .option(...flagArgs(s.threshold))
    .option(...flagArgs(s.models))
    .option(...flagArgs(s.logLevel));
  addModelOptions(cmd);
  return cmd.action(async (flags: ServeFlags) => {
    // The ranges of checkServeOptions (startServer), from SERVE_OPTIONS, with the flags named in errors; the byte
    // sizes (32MiB) and the time limit (seconds) are converted first.
    const bytes = (spec: typeof s.maxBodyBytes, raw: string | undefined) =>
      raw === undefined ? spec.default : parseByteSize(flagName(spec), raw);
    const timeout = s.timeoutMs;
    const workers = resolveFlag(s.workers, flags.workers);
    const auth = resolveFlag(s.auth, flags.auth);
    const metric = resolveFlag(s.metric, flags.metric);
    const load = modelOptions(flags);
    const cacheDir = load.cacheDir ?? defaultCacheDir();
    const partial = {
      host: resolveFlag(s.host, flags.host),
      port: resolveFlag(s.port, flags.port),
      workers,
      threadsPerWorker: load.threads ?? defaultThreadsPerWorker(workers),
      batchSize: resolveFlag(s.batchSize, flags.batch),
      queueSize: resolveFlag(s.queueSize, flags.queue),
      maxBodyBytes: bytes(s.maxBodyBytes, flags.maxBody),
      maxJsonBytes: bytes(s.maxJsonBytes, flags.maxJsonBody),
      maxImages: resolveFlag(s.maxImages, flags.maxImages),
      maxPixels: resolveFlag(s.maxPixels, flags.maxPixels),
      timeoutMs:
        flags.timeout === undefined
          ? timeout.default
          : Math.max(
              timeout.min,
              Math.round(check.number(flagName(timeout), flags.timeout, timeout.min / 1000, timeout.max / 1000) * 1000),
            ),
      auth,
      allowedHosts: flags.allowedHost ?? [],
      db: parseFlag(s.db, flags.db) ?? defaultGalleryPath(),
      approximate: flags.approximate ?? s.approximate.default,
      candidates: resolveFlag(s.candidates, flags.candidates),
      storage: resolveFlag(s.storage, flags.storage),
      metric,
      threshold: parseFlag(s.threshold, flags.threshold),
      logLevel: resolveFlag(s.logLevel, flags.logLevel),
      models: parseFlag(s.models, flags.models),
    };
    const token = await resolveToken(auth, flags.tokenFile);
    // Downloads happen here, with progress, before the workers start (they get files, not callbacks).
    const detectorModel = await ensureDetectorModel({
      model: parseFlag(s.detectorModel, flags.detectorModel),
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
      `vggface serve: listening on ${server.url} (web page ${server.url}/, ` +
        `API ${server.url}/openapi.json; auth ${auth})\n`,
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
