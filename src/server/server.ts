/**
 * `vggface/server`: the HTTP server as a library (kept out of the main entry, so importing vggface does not load
 * fastify). Starts and stops the whole server: inference workers (the model loads before anything listens), the gallery
 * worker, the thresholds, then the HTTP listener. Closing stops accepting connections, lets the requests in
 * flight finish, then closes the workers and the gallery store.
 *
 * ```ts
 * import { startServer, SERVE_DEFAULTS } from 'vggface/server';
 * const server = await startServer({ ...SERVE_DEFAULTS, threadsPerWorker: 2, load: { weights: 'VGG_FACE.caffemodel' },
 *   db: 'gallery.db', token: process.env.VGGFACE_TOKEN, logLevel: 'warn' });
 * console.log(server.url);                 // http://127.0.0.1:8080
 * await server.close();
 * ```
 */
import type { FastifyInstance } from 'fastify';
import { usageError, VggFaceError } from '../errors.js';
import { METRICS, type Metric } from '../distance/distance.js';
import { defaultCacheDir } from '../util/paths.js';
import { resolveThreshold } from '../verify/thresholds.js';
import { buildApp } from './app.js';
import { GalleryClient } from './gallery-client.js';
import { InferencePool } from './inference-pool.js';
import { createMetrics } from './metrics.js';
import { checkServeOptions, checkToken, type ServeOptions } from './options.js';
import { hostChecker, resolveListenHost } from './hosts.js';
import { resolveModelsDir } from './static.js';

export { SERVE_DEFAULTS, AUTH_MODES, defaultThreadsPerWorker, type ServeOptions, type AuthMode } from './options.js';

export interface RunningServer {
  /** http://host:port, with the port actually bound. */
  readonly url: string;
  readonly app: FastifyInstance;
  /** Stops accepting, finishes the requests in flight, closes the workers and the store. Safe to call twice. */
  close(): Promise<void>;
}

export async function startServer(
  given: ServeOptions,
  log: (message: string) => void = (m) => process.stderr.write(`${m}\n`),
): Promise<RunningServer> {
  // Before anything starts (workers, the gallery, the listener): a library caller gets the CLI's checks.
  const options = checkServeOptions(given);
  if (options.auth !== 'none' && !options.token)
    throw usageError(`auth ${options.auth} needs a token (or auth none to serve without one)`, 'token');
  if (options.token !== undefined) checkToken(options.token);
  // Before the model loads: a listen name that does not resolve, or an allowed host that is not a name, is a usage
  // error.
  const hostCheck = hostChecker(options.host, await resolveListenHost(options.host), options.allowedHosts ?? []);
  const modelsDir = options.models === undefined ? undefined : await resolveModelsDir(options.models);
  let pool: InferencePool | undefined;
  const metrics = createMetrics(() => pool);
  pool = await InferencePool.start(
    {
      workers: options.workers,
      queueSize: options.queueSize,
      setup: {
        load: options.load,
        detectorModel: options.detectorModel,
        threads: options.threadsPerWorker,
        batchSize: options.batchSize,
        maxPixels: options.maxPixels,
        decodeTimeoutSeconds: Math.max(1, Math.ceil(options.timeoutMs / 1000)),
      },
    },
    { batch: metrics.batch, done: metrics.described, rejected: metrics.rejected, log },
  );
  const running = pool;
  let gallery: GalleryClient;
  try {
    gallery = await GalleryClient.open(
      {
        db: options.db,
        storage: options.storage,
        modelPath: running.model.modelPath,
        info: running.model.info,
        threads: options.threadsPerWorker,
        approximate: options.approximate,
        candidates: options.candidates,
      },
      log,
    );
  } catch (err) {
    await running.close();
    throw err;
  }
  let shuttingDown = false;
  let app: FastifyInstance | undefined;
  try {
    const thresholds: Partial<Record<Metric, number>> = {};
    for (const metric of METRICS) {
      const explicit = metric === options.metric ? options.threshold : undefined;
      try {
        thresholds[metric] = (
          await resolveThreshold({
            metric,
            explicit,
            cacheDir: options.load.cacheDir ?? defaultCacheDir(),
            identity: running.model.identity,
          })
        ).threshold;
      } catch (err) {
        if (!(err instanceof VggFaceError && err.code === 'E_NOT_FOUND')) throw err;
      }
    }
    app = await buildApp({
      options,
      pool: running,
      gallery,
      thresholds,
      metrics,
      hostCheck,
      modelsDir,
      shuttingDown: () => shuttingDown,
    });
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    await app?.close();
    await running.close();
    await gallery.close();
    if ((err as NodeJS.ErrnoException)?.code === 'EADDRINUSE')
      throw new VggFaceError('E_USAGE', `${options.host}:${options.port}: the address is in use (pick another --port)`);
    if ((err as NodeJS.ErrnoException)?.code === 'EADDRNOTAVAIL')
      throw new VggFaceError('E_USAGE', `${options.host}: not an address of this machine (--host)`);
    if (['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME'].includes((err as NodeJS.ErrnoException)?.code ?? '')) {
      throw new VggFaceError(
        'E_USAGE',
        `--host ${JSON.stringify(options.host)}: does not resolve to an address of this machine`,
      );
    }
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  const server = app;
  return {
    url: `http://${host}:${port}`,
    app: server,
    close() {
      closing ??= (async () => {
        shuttingDown = true;
        // Requests are answered by their deadline; a client that does not read its answer must not hold the
        // shutdown forever, so past the deadline the connections left are closed.
        const drained = server.close(); // stop accepting; in-flight requests are answered first
        const timer = setTimeout(() => {
          log('connections still open after the request time limit: closing them');
          server.server.closeAllConnections();
        }, options.timeoutMs + 1000);
        // A gallery request stuck on the database (a lock, a server that stopped answering) must not hold the
        // shutdown either: past a short grace its connection is ended and the request answered 503.
        const abortGallery = setTimeout(() => void gallery.abort(), 2000);
        await drained;
        clearTimeout(timer);
        clearTimeout(abortGallery);
        await running.close();
        await gallery.close();
      })();
      return closing;
    },
  };
}
