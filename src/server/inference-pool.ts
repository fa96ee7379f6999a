/**
 * The main thread's side of inference: worker threads that each hold the model (see inference-worker.ts), a
 * bounded queue of requests waiting for one, deadlines, and cancellation. The event loop only moves messages:
 * decoding, detection and the model all run in the workers.
 *
 * A worker takes requests until it holds twice the batch size in images, so it always has the next photos to
 * decode while the model runs; further requests wait in the queue, and past `queueSize` waiting requests new
 * ones are refused at once (503 with Retry-After) rather than piling up memory and latency.
 */
import { Worker } from 'node:worker_threads';
import { VggFaceError, type ErrorCode } from '../errors.js';
import type { ModelInfo } from '../runtime/model-cache.js';
import type { ModelIdentity } from '../verify/thresholds.js';
import { ApiError, internalError } from './api-error.js';
import type { FromWorker, ImageResult, JobImage, JobSpec, ToWorker, WorkerSetup } from './protocol.js';
import { workerExecArgv } from '../util/worker.js';

export interface PoolSettings {
  readonly workers: number;
  readonly queueSize: number;
  readonly setup: WorkerSetup;
}

/** What the pool reports as it works (metrics, logs). */
export interface PoolObserver {
  batch(size: number, seconds: number): void;
  done(spec: JobSpec, results: readonly ImageResult[]): void;
  rejected(reason: 'queue_full' | 'timeout'): void;
  log(message: string): void;
}

export interface LoadedModel {
  readonly modelPath: string;
  readonly info: ModelInfo;
  readonly identity: ModelIdentity;
}

interface PendingJob {
  readonly id: number;
  readonly spec: JobSpec;
  readonly images: readonly JobImage[];
  readonly resolve: (results: ImageResult[]) => void;
  readonly reject: (err: ApiError) => void;
  timer?: NodeJS.Timeout;
  worker?: WorkerHandle;
  settled: boolean;
}

interface WorkerHandle {
  readonly worker: Worker;
  /** Images of the jobs it holds. */
  inflight: number;
  readonly jobs: Map<number, PendingJob>;
  closing: boolean;
}

const WORKER_URL = new URL('./inference-worker.js', import.meta.url);
/** Completed images remembered for the throughput estimate behind Retry-After. */
const RATE_WINDOW_MS = 10_000;

function spawn(setup: WorkerSetup): Promise<{ handle: WorkerHandle; model: LoadedModel }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, { workerData: { role: 'vggface-inference', setup }, execArgv: workerExecArgv() });
    const onMessage = (m: FromWorker) => {
      if (m.type === 'ready') {
        cleanup();
        resolve({ handle: { worker, inflight: 0, jobs: new Map(), closing: false }, model: { modelPath: m.modelPath, info: m.info, identity: m.identity } });
      } else if (m.type === 'fatal') {
        cleanup();
        reject(new VggFaceError((m.code as ErrorCode | undefined) ?? 'E_INTERNAL', m.message));
      }
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new VggFaceError('E_INTERNAL', `inference worker failed to start: ${err.message}`, { cause: err }));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new VggFaceError('E_INTERNAL', `inference worker exited with code ${code} while starting`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

export class InferencePool {
  private readonly handles: WorkerHandle[] = [];
  private readonly waiting: PendingJob[] = [];
  private nextId = 1;
  private readonly completed: { at: number; images: number }[] = [];
  private closed = false;

  private constructor(
    private readonly settings: PoolSettings,
    private readonly observer: PoolObserver,
    /** The model as the first worker loaded it (every worker loads the same file). */
    readonly model: LoadedModel,
  ) {}

  /**
   * Starts the workers one after another: the first converts the weights into the cache if needed, the others
   * then load the cached model. Rejects with the first worker's load error, leaving nothing running.
   */
  static async start(settings: PoolSettings, observer: PoolObserver): Promise<InferencePool> {
    const first = await spawn(settings.setup);
    const pool = new InferencePool(settings, observer, first.model);
    pool.adopt(first.handle);
    try {
      for (let i = 1; i < settings.workers; i++) pool.adopt((await spawn(settings.setup)).handle);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  private adopt(handle: WorkerHandle): void {
    this.handles.push(handle);
    handle.worker.on('message', (m: FromWorker) => this.onMessage(handle, m));
    handle.worker.on('error', (err) => this.observer.log(`inference worker error: ${err.stack ?? err.message}`));
    handle.worker.on('exit', (code) => this.onExit(handle, code));
  }

  /** Requests waiting for a worker. */
  get queueDepth(): number {
    return this.waiting.length;
  }

  /** Images held by the workers. */
  get inflightImages(): number {
    return this.handles.reduce((s, h) => s + h.inflight, 0);
  }

  get readyWorkers(): number {
    return this.handles.filter((h) => !h.closing).length;
  }

  get totalWorkers(): number {
    return this.settings.workers;
  }

  /** Seconds until the backlog should have cleared, from the recent throughput; 1 to 60. */
  retryAfterSeconds(): number {
    const now = Date.now();
    while (this.completed.length > 0 && this.completed[0].at < now - RATE_WINDOW_MS) this.completed.shift();
    const done = this.completed.reduce((s, c) => s + c.images, 0);
    if (done === 0) return 1;
    const rate = done / (RATE_WINDOW_MS / 1000);
    const backlog = this.inflightImages + this.waiting.reduce((s, j) => s + j.images.length, 0);
    return Math.min(60, Math.max(1, Math.ceil(backlog / rate)));
  }

  /**
   * Runs one request's images. Rejects with an ApiError: 503 when the queue is full or the deadline passes first,
   * the image's own error (400/413/415/422) when one of them cannot be used, 500 when a worker fails.
   */
  submit(spec: JobSpec, images: readonly JobImage[], options: { deadline: number; signal?: AbortSignal }): Promise<ImageResult[]> {
    if (this.closed) return Promise.reject(new ApiError(503, 'shutting_down', 'the server is shutting down', 1));
    if (this.waiting.length >= this.settings.queueSize && !this.idleWorker(images.length)) {
      this.observer.rejected('queue_full');
      const retry = this.retryAfterSeconds();
      return Promise.reject(new ApiError(503, 'queue_full', `the server is busy (${this.waiting.length} requests waiting); retry in ${retry} s`, retry));
    }
    return new Promise<ImageResult[]>((resolve, reject) => {
      const job: PendingJob = { id: this.nextId++, spec, images, resolve, reject, settled: false };
      const wait = Math.max(0, options.deadline - Date.now());
      job.timer = setTimeout(() => {
        this.observer.rejected('timeout');
        const retry = this.retryAfterSeconds();
        this.abandon(job, new ApiError(503, 'timeout', `the request did not finish within the server's time limit; retry in ${retry} s`, retry));
      }, wait);
      options.signal?.addEventListener('abort', () => this.abandon(job, new ApiError(499, 'client_closed', 'the client closed the connection')), { once: true });
      this.waiting.push(job);
      this.dispatch();
    });
  }

  /** A worker that would take `images` now. */
  private idleWorker(images: number): WorkerHandle | undefined {
    const capacity = 2 * this.settings.setup.batchSize;
    let best: WorkerHandle | undefined;
    for (const h of this.handles) {
      if (h.closing) continue;
      if (h.inflight > 0 && h.inflight + images > capacity) continue;
      if (!best || h.inflight < best.inflight) best = h;
    }
    return best;
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const job = this.waiting[0];
      const handle = this.idleWorker(job.images.length);
      if (!handle) return;
      this.waiting.shift();
      job.worker = handle;
      handle.inflight += job.images.length;
      handle.jobs.set(job.id, job);
      handle.worker.postMessage({ type: 'job', id: job.id, spec: job.spec, images: job.images } satisfies ToWorker);
    }
  }

  /** Gives up on a job (deadline, client gone): out of the queue, or cancelled in its worker. */
  private abandon(job: PendingJob, err: ApiError): void {
    if (job.settled) return;
    const i = this.waiting.indexOf(job);
    if (i >= 0) this.waiting.splice(i, 1);
    if (job.worker) {
      job.worker.worker.postMessage({ type: 'cancel', id: job.id } satisfies ToWorker);
      this.release(job);
    }
    this.settle(job, () => job.reject(err));
    this.dispatch();
  }

  private release(job: PendingJob): void {
    const handle = job.worker;
    if (!handle || !handle.jobs.delete(job.id)) return;
    handle.inflight -= job.images.length;
  }

  private settle(job: PendingJob, fn: () => void): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    fn();
  }

  private onMessage(handle: WorkerHandle, m: FromWorker): void {
    if (m.type === 'batch') {
      this.observer.batch(m.size, m.seconds);
      return;
    }
    if (m.type !== 'done' && m.type !== 'failed') return;
    const job = handle.jobs.get(m.id);
    if (!job) return; // abandoned meanwhile
    this.release(job);
    if (m.type === 'done') {
      this.completed.push({ at: Date.now(), images: job.images.length });
      this.observer.done(job.spec, m.results);
      this.settle(job, () => job.resolve([...m.results]));
    } else {
      this.settle(job, () => job.reject(ApiError.from(m.error)));
    }
    this.dispatch();
  }

  /** A worker that dies unexpectedly fails its requests (500) and is replaced. */
  private onExit(handle: WorkerHandle, code: number): void {
    const i = this.handles.indexOf(handle);
    if (i >= 0) this.handles.splice(i, 1);
    for (const job of [...handle.jobs.values()]) {
      this.release(job);
      this.settle(job, () => job.reject(internalError()));
    }
    if (handle.closing || this.closed) return;
    this.observer.log(`inference worker exited unexpectedly (code ${code}); starting a new one`);
    spawn(this.settings.setup).then(
      ({ handle: fresh }) => {
        if (this.closed) void fresh.worker.terminate();
        else {
          this.adopt(fresh);
          this.dispatch();
        }
      },
      (err: unknown) => this.observer.log(`could not restart the inference worker: ${(err as Error).message}`),
    );
  }

  /** Closes the workers (their models and detectors); requests still waiting are refused. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) this.settle(job, () => job.reject(new ApiError(503, 'shutting_down', 'the server is shutting down', 1)));
    await Promise.all(
      this.handles.map(
        (h) =>
          new Promise<void>((resolve) => {
            h.closing = true;
            h.worker.once('exit', () => resolve());
            h.worker.postMessage({ type: 'close' } satisfies ToWorker);
          }),
      ),
    );
  }
}
