/**
 * Runs a conversion in a worker thread. When the worker ends, the weights it read are freed at once
 * (the process's RSS drops back) instead of waiting for the main thread's garbage collector, so the ONNX
 * Runtime session opened next does not stack on top of them: the cold load of the full model peaks at about
 * what the session alone needs.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { convertAndQuantize, type ConversionOutcome, type ConvertOptions } from './convert.js';
import { transferList } from './quantize.js';
import { answerTask, runTaskInWorker } from '../util/worker.js';

interface Request {
  source: string;
  output: string;
  options: ConvertOptions;
}

/** Converts in a worker thread; with `quantizeWeights` the int8 layers come back moved, not copied. */
export function convertInWorker(source: string, output: string, options: ConvertOptions): Promise<ConversionOutcome> {
  // Settled on the worker's exit, not on its reply: only then are the worker's weights freed, so whatever runs next
  // (an ONNX Runtime session, the next conversion step) does not stack on top of them.
  return runTaskInWorker<ConversionOutcome>(
    new URL(import.meta.url),
    { source, output, options } satisfies Request,
    `conversion of ${source}`,
    source,
  );
}

if (!isMainThread && parentPort && (workerData as Request | undefined)?.source) {
  const { source, output, options } = workerData as Request;
  answerTask(parentPort, convertAndQuantize(source, output, options), (outcome) =>
    outcome.quantized ? transferList(outcome.quantized) : [],
  );
}
