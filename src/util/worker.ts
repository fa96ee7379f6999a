// Every module that starts a worker thread imports this one, so ONNX Runtime's telemetry opt-out is set by the
// main thread before any worker starts, where native code sees it (see runtime/no-telemetry.ts).
import '../runtime/no-telemetry.js';
import { Worker, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { VggFaceError } from '../errors.js';
import { serializeError, type SerializedError } from './serialize-error.js';

/**
 * Per-process options a worker thread refuses (ERR_WORKER_INVALID_EXEC_ARGV): Node 24 and 26's test runner passes
 * these to every test process (found by scripts/node-matrix.sh), and so would a user's own `node --test` suite.
 * Those in the first list take a value, given as --name=value or as the next argument.
 */
const PER_PROCESS_WITH_VALUE = [
  '--stack-trace-limit',
  '--secure-heap-min',
  '--secure-heap',
  '--v8-pool-size',
  '--trace-event-file-pattern',
  '--tls-cipher-list',
  '--use-largepages',
];
const PER_PROCESS_FLAGS = ['--node-snapshot', '--no-node-snapshot'];

/**
 * Node flags for the project's worker threads: the parent's, minus those that only make sense for a main entry
 * point or a whole process. A worker inherits process.execArgv by default, and `node --input-type=module -e ...`
 * (or --test) would make every worker fail to start.
 */
export function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (/^--(input-type|test[a-z-]*|eval|print)(=|$)/.test(a) || a === '-e' || a === '-p') {
      if (/^(-e|-p|--eval|--print|--input-type)$/.test(a)) i++; // its value is the next argument
      continue;
    }
    const name = a.split('=')[0];
    if (PER_PROCESS_FLAGS.includes(name)) continue;
    if (PER_PROCESS_WITH_VALUE.includes(name)) {
      if (!a.includes('=')) i++; // its value is the next argument
      continue;
    }
    out.push(a);
  }
  return out;
}

/** What a one-task worker posts back: its result, or its error. */
type OneTaskReply<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

/**
 * Runs one task in a new worker thread started from `script` (a module that, started as a worker, hands its work to
 * {@link answerTask}), for the work whose memory should go with it: the promise settles when the worker has exited,
 * not on its reply, since only then is what the task allocated freed, so whatever runs next does not stack on top.
 * A VggFaceError comes back as one (code and input kept); any other error, a crash or an exit without a reply
 * rejects with E_INTERNAL, saying `task` (e.g. "checking <path>") failed or stopped, about `input`.
 */
export function runTaskInWorker<T>(script: URL, workerData: unknown, task: string, input: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { workerData, execArgv: workerExecArgv() });
    let reply: OneTaskReply<T> | undefined;
    let failure: Error | undefined;
    worker.once('message', (r: OneTaskReply<T>) => (reply = r));
    worker.once('error', (err) => (failure = err));
    worker.once('exit', (code) => {
      if (reply?.ok) resolve(reply.value);
      else if (reply?.error.code)
        reject(new VggFaceError(reply.error.code, reply.error.message, { input: reply.error.input }));
      else if (reply) reject(new VggFaceError('E_INTERNAL', `${task} failed: ${reply.error.message}`, { input }));
      else if (failure)
        reject(new VggFaceError('E_INTERNAL', `${task} failed: ${failure.message}`, { input, cause: failure }));
      else reject(new VggFaceError('E_INTERNAL', `${task} stopped (worker exit code ${code})`, { input }));
    });
  });
}

/**
 * In a worker started by {@link runTaskInWorker}: posts the outcome of `work` once, its error serialised.
 * `transfer` lists the buffers of the result to move rather than copy.
 */
export function answerTask<T>(
  port: MessagePort,
  work: Promise<T>,
  transfer: (value: T) => readonly TransferListItem[] = () => [],
): void {
  work.then(
    (value) => port.postMessage({ ok: true, value } satisfies OneTaskReply<T>, transfer(value)),
    (err: unknown) => port.postMessage({ ok: false, error: serializeError(err) } satisfies OneTaskReply<T>),
  );
}
