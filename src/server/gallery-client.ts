/** The main thread's handle on the gallery worker: each call is one message and one reply. */
import { Worker } from 'node:worker_threads';
import { VggFaceError, type ErrorCode } from '../errors.js';
import type { IdentitySummary } from '../gallery/types.js';
import type { Metric } from '../metrics/distance.js';
import { ApiError } from './api-error.js';
import type { AddOutcome, GalleryReply, GalleryRequest, GallerySetup, SearchOutcome, StoredImage } from './gallery-worker.js';
import { workerExecArgv } from '../util/worker.js';

const WORKER_URL = new URL('./gallery-worker.js', import.meta.url);

export class GalleryClient {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: ApiError) => void }>();

  private constructor(
    private readonly worker: Worker,
    private readonly log: (message: string) => void,
  ) {
    worker.on('message', (r: GalleryReply) => {
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
      for (const p of this.pending.values()) p.reject(new ApiError(500, 'internal', 'internal error (see the server log)'));
      this.pending.clear();
    });
  }

  /** Opens the gallery (creating its file if needed) and loads its search index; rejects with the store's error. */
  static open(setup: GallerySetup, log: (message: string) => void): Promise<GalleryClient> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_URL, { workerData: { role: 'vggface-gallery', setup }, execArgv: workerExecArgv() });
      const fail = (err: Error) => reject(new VggFaceError('E_GALLERY', `the gallery worker failed to start: ${err.message}`, { cause: err }));
      worker.once('error', fail);
      worker.once('message', (m: { ready: boolean; code?: string; message?: string }) => {
        worker.off('error', fail);
        if (m.ready) resolve(new GalleryClient(worker, log));
        else reject(new VggFaceError((m.code as ErrorCode) ?? 'E_GALLERY', m.message ?? 'the gallery could not be opened'));
      });
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

  /** Closes the store after the operations already sent, and ends the worker. */
  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    await this.call({ op: 'close' }).catch((err: unknown) => this.log(`closing the gallery: ${(err as Error).message}`));
    await exited;
  }
}
