/**
 * Reads a weight file in a worker thread and reports what it is: layout, topology and identity. The weights read
 * (550 MB for the full model) are freed when the worker exits, so checking a download does not leave them on the
 * main thread's heap under the conversion that follows (which runs in a worker of its own).
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { VggFaceError } from '../errors.js';
import { answerTask, runTaskInWorker } from '../util/worker.js';
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
  return runTaskInWorker<WeightsCheck>(
    new URL(import.meta.url),
    { checkWeightsPath: path, format } satisfies Request,
    `checking ${path}`,
    path,
  );
}

if (!isMainThread && parentPort && (workerData as Request | undefined)?.checkWeightsPath) {
  const { checkWeightsPath, format } = workerData as Request;
  answerTask(parentPort, checkWeights(checkWeightsPath, format));
}
