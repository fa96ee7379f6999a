/**
 * Runs a conversion in a worker thread. When the worker ends, the weights it read are freed at once
 * (the process's RSS drops back) instead of waiting for the main thread's garbage collector, so the ONNX
 * Runtime session opened next does not stack on top of them: the cold load of the full model peaks at about
 * what the session alone needs.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { VggFaceError, type ErrorCode } from '../errors.js';
import { convertAndQuantize, type ConversionOutcome, type ConvertOptions } from './convert.js';
import { transferList } from './quantize.js';
import { workerExecArgv } from '../util/worker.js';

interface Request {
  source: string;
  output: string;
  options: ConvertOptions;
}

type Reply =
  | { ok: true; outcome: ConversionOutcome }
  | { ok: false; code: ErrorCode | undefined; message: string; input?: string };

/** Converts in a worker thread; with `quantizeWeights` the int8 layers come back moved, not copied. */
export function convertInWorker(source: string, output: string, options: ConvertOptions): Promise<ConversionOutcome> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { source, output, options } satisfies Request,
      execArgv: workerExecArgv(),
    });
    let reply: Reply | undefined;
    let failure: Error | undefined;
    worker.once('message', (r: Reply) => (reply = r));
    worker.once('error', (err) => (failure = err));
    // Settle on exit, not on the reply: only then are the worker's weights freed, so whatever runs next
    // (an ONNX Runtime session, the next conversion step) does not stack on top of them.
    worker.once('exit', (code) => {
      if (reply?.ok) resolve(reply.outcome);
      else if (reply?.code) reject(new VggFaceError(reply.code, reply.message, { input: reply.input }));
      else if (reply)
        reject(new VggFaceError('E_INTERNAL', `conversion of ${source} failed: ${reply.message}`, { input: source }));
      else if (failure)
        reject(
          new VggFaceError('E_INTERNAL', `conversion of ${source} failed: ${failure.message}`, {
            input: source,
            cause: failure,
          }),
        );
      else
        reject(
          new VggFaceError('E_INTERNAL', `conversion of ${source} stopped (worker exit code ${code})`, {
            input: source,
          }),
        );
    });
  });
}

if (!isMainThread && parentPort && (workerData as Request | undefined)?.source) {
  const { source, output, options } = workerData as Request;
  const port = parentPort;
  convertAndQuantize(source, output, options).then(
    (outcome) =>
      port.postMessage({ ok: true, outcome } satisfies Reply, outcome.quantized ? transferList(outcome.quantized) : []),
    (err: unknown) => {
      const e = err as VggFaceError;
      port.postMessage({
        ok: false,
        code: err instanceof VggFaceError ? e.code : undefined,
        message: e?.message ?? String(err),
        input: e?.input,
      } satisfies Reply);
    },
  );
}
