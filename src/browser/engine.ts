/**
 * Opens onnxruntime-web sessions for the page: in a Web Worker (default), or in the page itself with
 * `worker: false`. Both give the same {@link EngineSession}; the worker's is a proxy whose calls are messages,
 * and the pixel work of each step (pixels.ts) runs beside the session, off the page's thread.
 * A worker that fails (its script cannot load, it crashes) rejects every pending call with the reason and is
 * dropped, so the next session starts a new one: no call waits forever.
 */
import { VggFaceError } from '../errors.js';
import type { ResolvedAlignOptions } from '../face/align-transform.js';
import type { ResolvedDetectOptions } from '../face/detection.js';
import type { Fit } from '../image/decode.js';
import type { RawImage } from '../image/types.js';
import type { SerializedError } from '../util/serialize-error.js';
import { facesOp, portable, squareOp, type FoundFace, type PortableInput } from './pixels.js';
import type { BrowserImageInput } from './image.js';
import {
  ortBase,
  openSession,
  type RuntimeOptions,
  type Session,
  type SessionInfo,
  type TensorData,
} from './session.js';

export type WorkerRequest =
  | { id: number; type: 'open'; model: ArrayBuffer; options: RuntimeOptions }
  | { id: number; type: 'run'; sid: number; feeds: Record<string, TensorData>; outputs: readonly string[] }
  | {
      id: number;
      type: 'square';
      input: PortableInput;
      label: string;
      size: number;
      fit: Fit;
      maxPixels: number | undefined;
    }
  | {
      id: number;
      type: 'faces';
      sid: number;
      input: PortableInput;
      label: string;
      detect: ResolvedDetectOptions;
      align: ResolvedAlignOptions | null;
    }
  | { id: number; type: 'close'; sid: number };

export type WorkerReply = {
  id: number;
  error?: SerializedError;
  sid?: number;
  outputs?: Record<string, { data: Float32Array; dims: number[] }>;
  image?: RawImage;
  faces?: FoundFace[];
} & Partial<SessionInfo>;

/** A session with the pixel work of pipeline steps done beside it (in its worker, or here). */
export interface EngineSession extends Session {
  /** Decodes an image and brings it to size x size (an image that size is untouched). */
  square(
    input: BrowserImageInput,
    label: string,
    size: number,
    fit: Fit,
    maxPixels: number | undefined,
  ): Promise<RawImage>;
  /** With this session as YuNet: decodes a photo, finds its faces and, given `align`, cuts their aligned crops. */
  faces(
    input: BrowserImageInput,
    label: string,
    detect: ResolvedDetectOptions,
    align: ResolvedAlignOptions | null,
  ): Promise<FoundFace[]>;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Pending = { resolve: (r: WorkerReply) => void; reject: (e: Error) => void };

class WorkerClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | undefined;
  sessions = 0;

  constructor(private readonly onDead: () => void) {
    this.worker = startWorker();
    this.worker.onmessage = ({ data }: MessageEvent<WorkerReply>) => {
      const p = this.pending.get(data.id);
      this.pending.delete(data.id);
      const e = data.error;
      if (e !== undefined)
        p?.reject(e.code ? new VggFaceError(e.code, e.message, { input: e.input }) : new Error(e.message));
      else p?.resolve(data);
    };
    this.worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.fail(
        new Error(
          'the vggface worker ' +
            `failed${e.message ? `: ${e.message}` : ' to start (is vggface-worker.js served beside vggface.js?)'}`,
        ),
      );
    };
    this.worker.onmessageerror = () => this.fail(new Error('the vggface worker sent a message that could not be read'));
  }

  private fail(err: Error): void {
    this.failure = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.worker.terminate();
    this.onDead();
  }

  call(req: WithoutId<WorkerRequest>, transfer: Transferable[] = []): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id } as WorkerRequest, transfer);
    });
  }

  release(): void {
    if (--this.sessions > 0 || this.failure) return;
    this.worker.terminate();
    this.onDead();
  }
}

/** The worker script beside this bundle; from another origin, through a same-origin blob that imports it. */
function startWorker(): Worker {
  const url = new URL('./vggface-worker.js', import.meta.url);
  if (typeof location === 'undefined' || url.origin === location.origin) return new Worker(url, { type: 'module' });
  const shim = URL.createObjectURL(new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' }));
  return new Worker(shim, { type: 'module' });
}

const workers = new Map<string, WorkerClient>();

export interface EngineOptions extends RuntimeOptions {
  /** Run ONNX Runtime in a Web Worker (default true). */
  readonly worker: boolean;
}

/**
 * Opens a session on `model`. `transfer`: the bytes are this library's own copy and may be moved to the worker
 * (they are unusable afterwards); otherwise they are copied.
 */
export async function openEngine(model: Uint8Array, options: EngineOptions, transfer: boolean): Promise<EngineSession> {
  // Absolute, so a worker (or a blob-started one) resolves it as the page would.
  const runtime: RuntimeOptions = {
    backend: options.backend,
    wasmPaths: ortBase(options.wasmPaths),
    threads: options.threads,
  };
  if (!options.worker) {
    const s = await openSession(model, runtime);
    return {
      ...s,
      run: (feeds, outputs) => s.run(feeds, outputs),
      close: () => s.close(),
      square: (input, label, size, fit, maxPixels) => squareOp(input, label, size, fit, maxPixels),
      faces: (input, label, detect, align) =>
        facesOp((feeds, outputs) => s.run(feeds, outputs), input, label, detect, align),
    };
  }
  const key = JSON.stringify(runtime);
  let client = workers.get(key);
  if (!client) {
    const created: WorkerClient = new WorkerClient(() => workers.get(key) === created && workers.delete(key));
    client = created;
    workers.set(key, client);
  }
  const owner = client;
  owner.sessions++;
  const whole =
    transfer &&
    model.byteOffset === 0 &&
    model.byteLength === model.buffer.byteLength &&
    model.buffer instanceof ArrayBuffer;
  const bytes = whole ? (model.buffer as ArrayBuffer) : model.slice().buffer;
  let info: WorkerReply;
  try {
    info = await owner.call({ type: 'open', model: bytes, options: runtime }, [bytes]);
  } catch (err) {
    owner.release();
    throw err;
  }
  const sid = info.sid!;
  let closed = false;
  return {
    inputNames: info.inputNames!,
    outputNames: info.outputNames!,
    backend: info.backend!,
    threads: info.threads!,
    async run(feeds, outputs) {
      if (closed) throw new Error('this session was closed');
      const transferList = Object.values(feeds).map((t) => t.data.buffer as ArrayBuffer);
      return (await owner.call({ type: 'run', sid, feeds, outputs }, transferList)).outputs!;
    },
    async square(input, label, size, fit, maxPixels) {
      const p = await portable(input, label);
      return (await owner.call({ type: 'square', input: p.input, label, size, fit, maxPixels }, p.transfer)).image!;
    },
    async faces(input, label, detect, align) {
      if (closed) throw new Error('this session was closed');
      const p = await portable(input, label);
      return (await owner.call({ type: 'faces', sid, input: p.input, label, detect, align }, p.transfer)).faces!;
    },
    async close() {
      if (closed) return;
      closed = true;
      try {
        await owner.call({ type: 'close', sid });
      } finally {
        owner.release();
      }
    },
  };
}
