/**
 * The server's gallery in a worker thread of its own: the SQLite store (synchronous better-sqlite3 calls) and
 * the in-memory search index (loading it, scoring, re-ranking) never run on the event loop, whatever the size
 * of the gallery. One gallery for all inference workers, so every add is seen by the next search.
 * Operations run one at a time, in order: a search never sees an index that an add or remove is changing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { VggFaceError } from '../errors.js';
import { checkIdentity, Gallery, type GalleryModel } from '../gallery/gallery.js';
import { GalleryUnavailableError, PostgresStore, type PostgresConnectionState } from '../gallery/postgres-store.js';
import type { Precision } from '../gallery/scorer.js';
import { SqliteStore } from '../gallery/sqlite-store.js';
import type { Metric } from '../distance/distance.js';
import type { ModelInfo } from '../model/cache.js';
import type { Layer } from '../vggface.js';
import { ApiError, type ApiErrorData } from './api-error.js';

export interface GallerySetup {
  readonly db: string;
  readonly storage: Precision;
  readonly modelPath: string;
  readonly info: ModelInfo;
  readonly threads?: number;
  /** PostgreSQL: search through the approximate index (built at start if missing), re-ranking `candidates`. */
  readonly approximate?: boolean;
  readonly candidates?: number;
}

/** What the worker tells the main thread unasked: the PostgreSQL connection lost, or back. */
export interface GalleryEvent {
  readonly event: 'gallery-state';
  readonly state: PostgresConnectionState;
}

export interface StoredImage {
  readonly name: string;
  readonly sha256: string;
  readonly descriptor: Float32Array;
}

export interface AddOutcome {
  readonly status: 'added' | 'duplicate';
  /** The identity the image is stored under (another one for a duplicate added before). */
  readonly identity: string;
}

export interface SearchMatch {
  readonly identity: string;
  readonly distance: number;
  readonly verified: boolean;
  /** The stored face that matched best: the name it was added under. */
  readonly source: string;
}

export interface SearchOutcome {
  readonly identity: string;
  readonly distance: number;
  readonly matches: readonly SearchMatch[];
}

export type GalleryRequest =
  | { readonly op: 'add'; readonly identity: string; readonly images: readonly StoredImage[] }
  | {
      readonly op: 'search';
      readonly descriptor: Float32Array;
      readonly k: number;
      readonly metric: Metric;
      readonly threshold: number;
    }
  | { readonly op: 'remove'; readonly identity: string }
  | { readonly op: 'list' }
  /** Out of turn: ends the database connection now, so operations stuck on it fail (shutting down). */
  | { readonly op: 'abort' }
  | { readonly op: 'close' };

export type GalleryReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: ApiErrorData; readonly detail?: string };

/** A gallery-side failure as the API answers it: the store's location (a path, a URL) stays in the log. */
function apiError(err: unknown): { error: ApiErrorData; detail?: string } {
  if (err instanceof ApiError) return { error: err.toData() };
  if (err instanceof GalleryUnavailableError) {
    const message =
      err.reason === 'timeout'
        ? 'the gallery database did not answer in time: retry later'
        : 'the gallery database is unavailable: retry later';
    return { error: { status: 503, code: 'gallery_unavailable', message, retryAfter: 2 }, detail: err.message };
  }
  if (err instanceof VggFaceError && err.code === 'E_USAGE')
    return { error: { status: 400, code: 'invalid_request', message: err.message } };
  return {
    error: { status: 500, code: 'internal', message: 'internal error (see the server log)' },
    detail: (err as Error)?.stack ?? String(err),
  };
}

async function run(gallery: Gallery<GalleryModel>, req: GalleryRequest, setup: GallerySetup): Promise<unknown> {
  switch (req.op) {
    case 'add': {
      const added = await gallery.addDescriptors(
        req.identity,
        req.images.map((img) => ({ label: img.name, contentHash: img.sha256, descriptor: img.descriptor })),
      );
      return added.map(
        (a): AddOutcome => ({
          status: a.status === 'added' ? 'added' : 'duplicate',
          identity: a.identity ?? req.identity,
        }),
      );
    }
    case 'search': {
      if ((await gallery.store.count()) === 0)
        throw new ApiError(
          404,
          'gallery_empty',
          'the gallery has no faces yet: add some with POST /v1/gallery/{id}/faces',
        );
      const r = await gallery.searchDescriptor(req.descriptor, {
        k: req.k,
        metric: req.metric,
        threshold: req.threshold,
        approximate: setup.approximate,
        candidates: setup.candidates,
      });
      return {
        identity: r.identity,
        distance: r.distance,
        matches: r.matches.map((m) => ({
          identity: m.identity,
          distance: m.distance,
          verified: m.verified,
          source: m.face.source,
        })),
      } satisfies SearchOutcome;
    }
    case 'remove': {
      checkIdentity(req.identity);
      const removed = await gallery.store.remove(req.identity);
      if (removed === 0)
        throw new ApiError(404, 'identity_not_found', `no identity ${JSON.stringify(req.identity)} in the gallery`);
      return removed;
    }
    case 'list':
      return gallery.list();
    case 'abort':
      if (gallery.store instanceof PostgresStore) await gallery.store.close();
      return null;
    case 'close':
      await gallery.close();
      return null;
  }
}

async function start(setup: GallerySetup, port: NonNullable<typeof parentPort>): Promise<void> {
  const binding: GalleryModel = {
    info: setup.info,
    modelPath: setup.modelPath,
    dimension: (layer: Layer = 'fc7') => setup.info.topology[layer],
  };
  let gallery: Gallery<GalleryModel>;
  let ready = false;
  // PostgreSQL: reconnect after the server restarts, and say so (for /healthz); with --approximate, the index now.
  const postgres = {
    annIndex: setup.approximate,
    reconnect: true,
    onStateChange: (state: PostgresConnectionState) => {
      if (ready) port.postMessage({ event: 'gallery-state', state } satisfies GalleryEvent);
    },
  };
  try {
    gallery = await Gallery.open(binding, {
      db: setup.db,
      precision: setup.storage,
      create: true,
      threads: setup.threads,
      postgres,
    });
    // Load the search index now, not on the first search.
    if (gallery.store instanceof SqliteStore && (await gallery.store.meta())) await gallery.store.loadIndex();
  } catch (err) {
    port.postMessage({
      ready: false,
      code: err instanceof VggFaceError ? err.code : 'E_INTERNAL',
      message: (err as Error)?.message ?? String(err),
    });
    port.close();
    return;
  }
  let chain: Promise<unknown> = Promise.resolve();
  port.on('message', ({ id, request }: { id: number; request: GalleryRequest }) => {
    if (request.op === 'abort') {
      void run(gallery, request, setup).then(() =>
        port.postMessage({ id, ok: true, value: null } satisfies GalleryReply),
      );
      return;
    }
    chain = chain.then(async () => {
      try {
        const value = await run(gallery, request, setup);
        port.postMessage({ id, ok: true, value } satisfies GalleryReply);
      } catch (err) {
        port.postMessage({ id, ok: false, ...apiError(err) } satisfies GalleryReply);
      }
      if (request.op === 'close') port.close();
    });
  });
  port.postMessage({ ready: true, backend: gallery.store instanceof PostgresStore ? 'postgres' : 'sqlite' });
  ready = true;
}

if (parentPort && (workerData as { role?: string } | undefined)?.role === 'vggface-gallery') {
  void start((workerData as { setup: GallerySetup }).setup, parentPort);
}
