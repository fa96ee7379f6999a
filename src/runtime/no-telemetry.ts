/**
 * ONNX Runtime's telemetry, turned off. Since 1.29, ONNX Runtime on Linux and macOS collects usage events
 * (sessions created, model producer and graph names, a persistent device id) in
 * `~/.cache/Microsoft/DeveloperTools/.onnxruntime/`, writes `$TMPDIR/mat-debug-<pid>.log` and uploads to Microsoft.
 * `ORT_DISABLE_TELEMETRY=1` (also `true`, `yes`, `on`) is its full opt-out: nothing is created, written or sent. The
 * native library reads it from the process environment when it initialises and keeps the decision for the life of
 * the process; the Node binding offers no API for it (`ort.env` has only log and debug flags, and the C API's
 * `DisableTelemetryEvents` is neither exposed nor a full opt-out).
 *
 * So this module must run before onnxruntime-node is loaded: the modules that import onnxruntime-node import it
 * first (an ES module evaluates its imports in order). The variable is always set to 1, whatever it was: vggface
 * never lets ONNX Runtime collect anything (child processes of the host inherit it too).
 *
 * Only the main thread's `process.env` reaches the C environment; a worker thread's is a copy that native code does
 * not see. So src/util/worker.ts, which every module that starts a worker thread imports, imports this module too:
 * the variable is then set by the main thread before any worker starts, each worker inherits it, and whichever
 * thread loads ONNX Runtime reads it. A worker thread whose parent never ran this module cannot turn telemetry off
 * itself: it says so once.
 */
import { isMainThread } from 'node:worker_threads';

export const ORT_TELEMETRY_OPT_OUT = 'ORT_DISABLE_TELEMETRY';

if (process.env[ORT_TELEMETRY_OPT_OUT] !== '1') {
  process.env[ORT_TELEMETRY_OPT_OUT] = '1';
  if (!isMainThread) {
    process.emitWarning(
      `${ORT_TELEMETRY_OPT_OUT}=1 cannot be set from a worker thread, and this ` +
        "worker's parent did not set it: ONNX Runtime's " +
        'telemetry may be on. Import vggface in the main thread first, or ' +
        `set ${ORT_TELEMETRY_OPT_OUT}=1 in the environment.`,
      { code: 'VGGFACE_ORT_TELEMETRY' },
    );
  }
}
