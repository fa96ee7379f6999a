/**
 * An {@link InferenceEngine} whose ONNX Runtime session lives in a worker thread.
 *
 * onnxruntime-node's `session.run` is synchronous under its promise: a 140 ms int8 batch holds the calling thread
 * for 140 ms (measured: a 2 ms timer ticked once in 145 ms). On the main thread that stalls decoding of the next
 * batch (sharp's callbacks), progress bars and HTTP. Here the session runs in a worker, so the caller's thread stays
 * free while ONNX Runtime uses the cores. Inputs are copied to the worker (a batch of 8 images is 1.2 MB, against a
 * run of 140-530 ms); the worker is unref'd while idle, so a forgotten close() does not keep a process alive.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { VggFaceError } from '../errors.js';
import { openEngine, type EngineOptions, type InferenceEngine, type TensorData } from './onnxruntime.js';
import { serializeError, type SerializedError } from '../util/serialize-error.js';
import { workerExecArgv } from '../util/worker.js';

type Outputs = Record<string, { data: Float32Array; dims: readonly number[] }>;
type ToWorker =
  | { type: 'run'; id: number; feeds: Record<string, TensorData>; outputs: readonly string[] }
  | { type: 'close' };
type FromWorker =
  | { type: 'ready'; inputNames: string[]; outputNames: string[] }
  | { type: 'open-error'; error: SerializedError }
  | { type: 'result'; id: number; outputs: Outputs }
  | { type: 'error'; id: number; error: SerializedError };

interface Setup {
  model: string | Uint8Array;
  options: EngineOptions;
}

function revive(e: SerializedError): VggFaceError {
  return new VggFaceError(e.code ?? 'E_MODEL', e.message, { input: e.input });
}

/** Opens `model` in a new worker thread; resolves once the session is ready (or rejects with its error). */
export function openEngineInWorker(model: string | Uint8Array, options: EngineOptions = {}): Promise<InferenceEngine> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { model, options } satisfies Setup,
      execArgv: workerExecArgv(),
    });
    const pending = new Map<number, { resolve: (o: Outputs) => void; reject: (e: Error) => void }>();
    let nextId = 0;
    let opened = false;
    let exited = false;
    const failAll = (err: Error) => {
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    };
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        opened = true;
        worker.unref();
        resolve({
          inputNames: m.inputNames,
          outputNames: m.outputNames,
          run(feeds, outputs) {
            if (exited) return Promise.reject(new VggFaceError('E_MODEL', 'the inference engine was closed'));
            const id = nextId++;
            if (pending.size === 0) worker.ref();
            worker.postMessage({ type: 'run', id, feeds, outputs } satisfies ToWorker);
            return new Promise<Outputs>((res, rej) => pending.set(id, { resolve: res, reject: rej }));
          },
          async close() {
            if (exited) return;
            worker.ref();
            const done = new Promise<void>((res) => worker.once('exit', () => res()));
            worker.postMessage({ type: 'close' } satisfies ToWorker);
            await done;
          },
        });
      } else if (m.type === 'open-error') {
        reject(revive(m.error));
      } else {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (pending.size === 0) worker.unref();
        if (m.type === 'result') p.resolve(m.outputs);
        else p.reject(revive(m.error));
      }
    });
    worker.on('error', (err) => {
      const e = new VggFaceError('E_MODEL', `the inference worker failed: ${err.message}`, { cause: err });
      if (!opened) reject(e);
      failAll(e);
    });
    worker.on('exit', (code) => {
      exited = true;
      const e = new VggFaceError('E_MODEL', `the inference worker stopped (exit code ${code})`);
      if (!opened) reject(e);
      failAll(e);
    });
  });
}

if (!isMainThread && parentPort && (workerData as Setup | undefined)?.model !== undefined) {
  const port = parentPort;
  const { model, options } = workerData as Setup;
  openEngine(model, options).then(
    (engine) => {
      port.on('message', (m: ToWorker) => {
        if (m.type === 'close') {
          engine.close().finally(() => port.close());
          return;
        }
        engine.run(m.feeds, m.outputs).then(
          (outputs) => port.postMessage({ type: 'result', id: m.id, outputs } satisfies FromWorker),
          (err: unknown) =>
            port.postMessage({ type: 'error', id: m.id, error: serializeError(err) } satisfies FromWorker),
        );
      });
      port.postMessage({
        type: 'ready',
        inputNames: [...engine.inputNames],
        outputNames: [...engine.outputNames],
      } satisfies FromWorker);
    },
    (err: unknown) => {
      port.postMessage({ type: 'open-error', error: serializeError(err) } satisfies FromWorker);
      port.close();
    },
  );
}
