/**
 * Reads a weight file in a worker thread and reports what it is: layout, topology and identity. The weights read
 * (550 MB for the full model) are freed when the worker exits, so checking a download does not leave them on the
 * main thread's heap under the conversion that follows (which runs in a worker of its own).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { VggFaceError, type ErrorCode } from '../errors.js';
import { workerExecArgv } from '../util/worker.js';
import { detectFormat, readWeights } from './formats.js';
import { isFullSize, type Topology } from './topology.js';
import type { ChannelOrder, FormatId } from './types.js';

export interface WeightsCheck {
  readonly format: FormatId;
  readonly layout: string;
  readonly sourceDtype: string;
  readonly inputChannelOrder: ChannelOrder;
  readonly topology: Topology;
  /** The widths of the published network (not a narrow copy of its topology). */
  readonly fullSize: boolean;
  /** The network's identity (weights/identity.ts). */
  readonly identity: string;
}

interface Request {
  checkWeightsPath: string;
  format?: FormatId;
}

type Reply =
  | { ok: true; check: WeightsCheck }
  | { ok: false; code: ErrorCode | undefined; message: string; input?: string };

/** Reads and checks `path` here (detected layout, or `format`). */
export async function checkWeights(path: string, format?: FormatId): Promise<WeightsCheck> {
  const id = format ?? (await detectFormat(path));
  if (id === 'onnx')
    throw new VggFaceError('E_FORMAT', `${path}: a converted ONNX model, not weights`, { input: path });
  const { weights, topology } = await readWeights(path, id);
  return {
    format: id,
    layout: weights.layout,
    sourceDtype: weights.sourceDtype,
    inputChannelOrder: weights.inputChannelOrder,
    topology,
    fullSize: isFullSize(topology),
    identity: weights.identity!,
  };
}

/** {@link checkWeights} in a worker thread; errors come back as the same VggFaceErrors. */
export function checkWeightsInWorker(path: string, format?: FormatId): Promise<WeightsCheck> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { checkWeightsPath: path, format } satisfies Request,
      execArgv: workerExecArgv(),
    });
    let reply: Reply | undefined;
    let failure: Error | undefined;
    worker.once('message', (r: Reply) => (reply = r));
    worker.once('error', (err) => (failure = err));
    worker.once('exit', (code) => {
      if (reply?.ok) resolve(reply.check);
      else if (reply?.code) reject(new VggFaceError(reply.code, reply.message, { input: reply.input }));
      else if (reply)
        reject(new VggFaceError('E_INTERNAL', `checking ${path} failed: ${reply.message}`, { input: path }));
      else if (failure)
        reject(
          new VggFaceError('E_INTERNAL', `checking ${path} failed: ${failure.message}`, {
            input: path,
            cause: failure,
          }),
        );
      else
        reject(new VggFaceError('E_INTERNAL', `checking ${path} stopped (worker exit code ${code})`, { input: path }));
    });
  });
}

if (!isMainThread && parentPort && (workerData as Request | undefined)?.checkWeightsPath) {
  const { checkWeightsPath, format } = workerData as Request;
  const port = parentPort;
  checkWeights(checkWeightsPath, format).then(
    (check) => port.postMessage({ ok: true, check } satisfies Reply),
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
