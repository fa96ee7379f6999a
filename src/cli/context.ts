/** What a command needs from the process, passed in so commands never reach for globals directly. */
import type { VggFaceError } from '../errors.js';

export interface CommandContext {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Set when some items of a batch failed: the process exits 1 after finishing the others. */
  failures: number;
}

export function reportItemError(ctx: CommandContext, err: VggFaceError): void {
  ctx.failures++;
  ctx.stderr.write(`vggface: ${err.message}\n`);
}
