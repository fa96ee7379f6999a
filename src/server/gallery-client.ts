/** The main thread's handle on the gallery worker: each call is one message and one reply. */
import { Worker } from 'node:worker_threads';
import { VggFaceError, type ErrorCode } from '../errors.js';
import type { IdentitySummary } from '../gallery/types.js';
import type { Metric } from '../distance/distance.js';
import { ApiError } from './api-error.js';
import type {
  AddOutcome,
  GalleryEvent,
  GalleryReply,
  GalleryRequest,
  GallerySetup,
  SearchOutcome,
  StoredImage,
} from './gallery-worker.js';
import { workerExecArgv } from '../util/worker.js';

const WORKER_URL = new URL('./gallery-worker.js', import.meta.url);
/** How long close() waits for the worker to close its store before ending the thread. */
const CLOSE_GRACE_MS = 5000;

/** The gallery as /healthz reports it: `unavailable` while its PostgreSQL server cannot be reached. */
export interface GalleryHealth {
  readonly backend: 'sqlite' | 'postgres';
  readonly state: 'ok' | 'unavailable';
}

export class GalleryClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: ApiError) => void }>();

  private galleryHealth: GalleryHealth;

  private constructor(
    private readonly worker: Worker,
    private readonly log: (message: string) => void,
    backend: GalleryHealth['backend'],
  ) {
    this.galleryHealth = { backend, state: 'ok' };
    worker.on('message', (r: GalleryReply | GalleryEvent) => {
      if ('event' in r) {
        const up = r.state.state === 'connected';
        if (r.state.state === 'closed') return;
        this.galleryHealth = { backend, state: up ? 'ok' : 'unavailable' };
        this.log(
          up
            ? 'gallery: connected to PostgreSQL again'
            : `gallery: lost the connection to PostgreSQL (${r.state.error ?? 'unknown reason'}); reconnecting`,
        );
        return;
      }
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else {
        if (r.detail) this.log(`gallery error: ${r.detail}`);
        p.reject(ApiError.from(r.error));
      }
    });
    worker.on('error', (err) => this.log(`gallery worker error: ${err.stack ?? err.message}`));
    worker.on('exit', () => {
      for (const p of this.pending.values())
        p.reject(new ApiError(500, 'internal', 'internal error (see the server log)'));
      this.pending.clear();
    });
  }

  /** Opens the gallery (creating its file if needed) and loads its search index; rejects with the store's error. */
  static open(setup: GallerySetup, log: (message: string) => void): Promise<GalleryClient> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_URL, {
        workerData: { role: 'vggface-gallery', setup },
        execArgv: workerExecArgv(),
      });
      const fail = (err: Error) =>
        reject(new VggFaceError('E_GALLERY', `the gallery worker failed to start: ${err.message}`, { cause: err }));
      worker.once('error', fail);
      worker.once(
        'message',
        (m: { ready: boolean; backend?: GalleryHealth['backend']; code?: string; message?: string }) => {
          worker.off('error', fail);
          if (m.ready) resolve(new GalleryClient(worker, log, m.backend ?? 'sqlite'));
          else
            reject(
              new VggFaceError((m.code as ErrorCode) ?? 'E_GALLERY', m.message ?? 'the gallery could not be opened'),
            );
        },
      );
    });
  }

  private call<T>(request: GalleryRequest, transfer: ArrayBuffer[] = []): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, request }, transfer);
    });
  }

  add(identity: string, images: readonly StoredImage[]): Promise<AddOutcome[]> {
    return this.call({ op: 'add', identity, images });
  }

  search(descriptor: Float32Array, options: { k: number; metric: Metric; threshold: number }): Promise<SearchOutcome> {
    return this.call({ op: 'search', descriptor, ...options });
  }

  remove(identity: string): Promise<number> {
    return this.call({ op: 'remove', identity });
  }

  list(): Promise<IdentitySummary[]> {
    return this.call({ op: 'list' });
  }

  /** Ends the gallery's database connection at once (shutting down): operations waiting on it fail with 503. */
  async abort(): Promise<void> {
    await this.call({ op: 'abort' }).catch(() => {});
  }

  /** The gallery's state, for /healthz. */
  get health(): GalleryHealth {
    return this.galleryHealth;
  }

  /**
   * Closes the store after the operations already sent, and ends the worker; a worker that has not finished
   * within a few seconds (a database that does not answer) is ended anyway.
   */
  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS)));
    const closed = this.call({ op: 'close' }).catch((err: unknown) =>
      this.log(`closing the gallery: ${(err as Error).message}`),
    );
    if ((await Promise.race([closed.then(() => exited), late])) === 'late') {
      this.log('the gallery did not close in time: ending its thread');
      await this.worker.terminate();
    }
    clearTimeout(timer);
    await exited;
  }
}
