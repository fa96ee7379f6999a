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
import type { ModelInfo } from '../model/cache.js';
import type { ModelIdentity } from '../model/identity.js';
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
  /** Moved to the worker with the images (their buffers), not copied. */
  readonly transfer: readonly ArrayBuffer[];
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
  /** performance.now() when it last went from idle to busy, and of its last answer: the span a completion took. */
  busySince: number;
  lastDoneAt: number;
}

const WORKER_URL = new URL('./inference-worker.js', import.meta.url);
/** Weight of each new per-image time in the running estimate behind Retry-After. */
const RATE_SMOOTHING = 0.3;
/** Retry-After bounds, seconds. */
const RETRY_MIN = 1;
const RETRY_MAX = 600;

function spawn(setup: WorkerSetup): Promise<{ handle: WorkerHandle; model: LoadedModel; secondsPerImage: number }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_URL, {
      workerData: { role: 'vggface-inference', setup },
      execArgv: workerExecArgv(),
    });
    const onMessage = (m: FromWorker) => {
      if (m.type === 'ready') {
        cleanup();
        resolve({
          handle: { worker, inflight: 0, jobs: new Map(), closing: false, busySince: 0, lastDoneAt: 0 },
          model: { modelPath: m.modelPath, info: m.info, identity: m.identity },
          secondsPerImage: m.secondsPerImage,
        });
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
  private closed = false;

  private constructor(
    private readonly settings: PoolSettings,
    private readonly observer: PoolObserver,
    /** The model as the first worker loaded it (every worker loads the same file). */
    readonly model: LoadedModel,
    /** Seconds a worker takes per image: timed at start, then from the answers (see {@link retryAfterSeconds}). */
    private secondsPerImage: number,
  ) {}

  /**
   * Starts the workers one after another: the first converts the weights into the cache if needed, the others
   * then load the cached model. Rejects with the first worker's load error, leaving nothing running.
   */
  static async start(settings: PoolSettings, observer: PoolObserver): Promise<InferencePool> {
    const first = await spawn(settings.setup);
    const pool = new InferencePool(settings, observer, first.model, first.secondsPerImage);
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

  /**
   * Seconds until the backlog (images held by the workers and waiting) should have cleared: its length times the
   * per-image time, over the workers. The per-image time is measured by each worker at start, so a cold burst gets
   * a real estimate, then follows the answers: the span since the worker's previous answer (or since it became
   * busy) over the answer's images, smoothed.
   */
  retryAfterSeconds(): number {
    const backlog = this.inflightImages + this.waiting.reduce((s, j) => s + j.images.length, 0);
    const seconds = (backlog * this.secondsPerImage) / Math.max(1, this.readyWorkers);
    return Math.min(RETRY_MAX, Math.max(RETRY_MIN, Math.ceil(seconds)));
  }

  private timeAnswer(handle: WorkerHandle, images: number): void {
    const now = performance.now();
    const sample = (now - Math.max(handle.busySince, handle.lastDoneAt)) / 1000 / Math.max(1, images);
    handle.lastDoneAt = now;
    this.secondsPerImage += (sample - this.secondsPerImage) * RATE_SMOOTHING;
  }

  /**
   * Runs one request's images. Rejects with an ApiError: 503 when the queue is full or the deadline passes first,
   * the image's own error (400/413/415/422) when one of them cannot be used, 500 when a worker fails.
   */
  submit(
    spec: JobSpec,
    images: readonly JobImage[],
    options: { deadline: number; signal?: AbortSignal; transfer?: readonly ArrayBuffer[] },
  ): Promise<ImageResult[]> {
    if (this.closed) return Promise.reject(new ApiError(503, 'shutting_down', 'the server is shutting down', 1));
    if (this.waiting.length >= this.settings.queueSize && !this.idleWorker(images.length)) {
      this.observer.rejected('queue_full');
      const retry = this.retryAfterSeconds();
      return Promise.reject(
        new ApiError(
          503,
          'queue_full',
          `the server is busy (${this.waiting.length} requests waiting); retry in ${retry} s`,
          retry,
        ),
      );
    }
    return new Promise<ImageResult[]>((resolve, reject) => {
      const job: PendingJob = {
        id: this.nextId++,
        spec,
        images,
        transfer: options.transfer ?? [],
        resolve,
        reject,
        settled: false,
      };
      const wait = Math.max(0, options.deadline - Date.now());
      job.timer = setTimeout(() => {
        this.observer.rejected('timeout');
        const retry = this.retryAfterSeconds();
        this.abandon(
          job,
          new ApiError(
            503,
            'timeout',
            `the request did not finish within the server's time limit; retry in ${retry} s`,
            retry,
          ),
        );
      }, wait);
      options.signal?.addEventListener(
        'abort',
        () => this.abandon(job, new ApiError(499, 'client_closed', 'the client closed the connection')),
        { once: true },
      );
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
      if (handle.inflight === 0) handle.busySince = performance.now();
      handle.inflight += job.images.length;
      handle.jobs.set(job.id, job);
      handle.worker.postMessage({ type: 'job', id: job.id, spec: job.spec, images: job.images } satisfies ToWorker, [
        ...job.transfer,
      ]);
    }
  }

  /**
   * Gives up on a job (deadline, client gone): out of the queue, or cancelled in its worker. A cancelled job's
   * images stay counted in flight until the worker says its running work has returned ('released').
   */
  private abandon(job: PendingJob, err: ApiError): void {
    if (job.settled) return;
    const i = this.waiting.indexOf(job);
    if (i >= 0) this.waiting.splice(i, 1);
    if (job.worker) job.worker.worker.postMessage({ type: 'cancel', id: job.id } satisfies ToWorker);
    this.settle(job, () => job.reject(err));
    this.dispatch();
  }

  private release(job: PendingJob): void {
    const handle = job.worker;
    if (!handle?.jobs.delete(job.id)) return;
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
    if (m.type !== 'done' && m.type !== 'failed' && m.type !== 'released') return;
    const job = handle.jobs.get(m.id);
    if (!job) return;
    if (m.type === 'done') {
      this.release(job);
      this.timeAnswer(handle, job.images.length);
      this.observer.done(job.spec, m.results);
      this.settle(job, () => job.resolve([...m.results])); // nothing if abandoned meanwhile
      this.dispatch();
    } else if (m.type === 'failed') {
      this.settle(job, () => job.reject(ApiError.from(m.error)));
    } else if (m.type === 'released') {
      this.release(job);
      this.dispatch();
    }
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
    for (const job of this.waiting.splice(0))
      this.settle(job, () => job.reject(new ApiError(503, 'shutting_down', 'the server is shutting down', 1)));
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
