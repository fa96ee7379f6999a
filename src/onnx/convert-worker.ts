/**
 * Runs a conversion in a worker thread. When the worker ends, the weights it read are freed at once
 * (the process's RSS drops back) instead of waiting for the main thread's garbage collector, so the ONNX
 * Runtime session opened next does not stack on top of them: the cold load of the full model peaks at about
 * what the session alone needs.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { VggFaceError, type ErrorCode } from '../errors.js';
import { convertWeightsToOnnx, type ConversionReport, type ConvertOptions } from './convert.js';

interface Request {
  source: string;
  output: string;
  options: ConvertOptions;
}

type Reply = { ok: true; report: ConversionReport } | { ok: false; code: ErrorCode | undefined; message: string; input?: string };

export function convertInWorker(source: string, output: string, options: ConvertOptions): Promise<ConversionReport> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { source, output, options } satisfies Request });
    let settled = false;
    worker.once('message', (reply: Reply) => {
      settled = true;
      if (reply.ok) resolve(reply.report);
      else if (reply.code) reject(new VggFaceError(reply.code, reply.message, { input: reply.input }));
      else reject(new VggFaceError('E_INTERNAL', `conversion of ${source} failed: ${reply.message}`, { input: source }));
    });
    worker.once('error', (err) => {
      settled = true;
      reject(new VggFaceError('E_INTERNAL', `conversion of ${source} failed: ${err.message}`, { input: source, cause: err }));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new VggFaceError('E_INTERNAL', `conversion of ${source} stopped (worker exit code ${code})`, { input: source }));
    });
  });
}

if (!isMainThread && parentPort && (workerData as Request | undefined)?.source) {
  const { source, output, options } = workerData as Request;
  const port = parentPort;
  convertWeightsToOnnx(source, output, options).then(
    (report) => port.postMessage({ ok: true, report } satisfies Reply),
    (err: unknown) => {
      const e = err as VggFaceError;
      port.postMessage({ ok: false, code: err instanceof VggFaceError ? e.code : undefined, message: e?.message ?? String(err), input: e?.input } satisfies Reply);
    },
  );
}
