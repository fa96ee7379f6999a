// Every module that starts a worker thread imports this one, so ONNX Runtime's telemetry opt-out is set by the
// main thread before any worker starts, where native code sees it (see runtime/no-telemetry.ts).
import '../runtime/no-telemetry.js';

/**
 * Node flags for the project's worker threads: the parent's, minus those that only make sense for a main entry
 * point. A worker inherits process.execArgv by default, and `node --input-type=module -e ...` (or --test) would
 * make every worker fail to start.
 */
export function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (/^--(input-type|test[a-z-]*|eval|print)(=|$)/.test(a) || a === '-e' || a === '-p') {
      if (/^(-e|-p|--eval|--print|--input-type)$/.test(a)) i++; // its value is the next argument
      continue;
    }
    out.push(a);
  }
  return out;
}
