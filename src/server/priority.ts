/**
 * Linux: gives the event loop the cores first. Every other thread of the process (libuv's pool, where sharp decodes,
 * and the worker threads, whose ONNX Runtime threads inherit it) is lowered to nice 10; threads started later by those
 * threads inherit that. The event loop only parses requests and answers /healthz, so it costs inference almost nothing,
 * but it no longer waits behind a decode for a core. For a process that is the server (`vggface serve`), not for a
 * library caller's process. Elsewhere, or without /proc, nothing changes.
 */
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

export const BACKGROUND_NICE = 10;

export function prioritizeEventLoop(): number {
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return 0; // not Linux
  }
  let lowered = 0;
  for (const t of tids) {
    const tid = Number(t);
    if (tid === process.pid) continue; // the main thread: the event loop
    try {
      setPriority(tid, Math.max(getPriority(tid), BACKGROUND_NICE));
      lowered++;
    } catch (err) {
      // ESRCH: the thread ended between the listing and now. (os.setPriority puts the errno in info.code.)
      const code = (err as { info?: { code?: string } }).info?.code ?? (err as NodeJS.ErrnoException).code;
      if (code !== 'ESRCH') throw err;
    }
  }
  return lowered;
}
