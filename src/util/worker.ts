// Every module that starts a worker thread imports this one, so ONNX Runtime's telemetry opt-out is set by the
// main thread before any worker starts, where native code sees it (see runtime/no-telemetry.ts).
import '../runtime/no-telemetry.js';

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
