/**
 * An error as it crosses to another thread (a Node worker thread, a Web Worker): structured clone keeps an Error's
 * message but not its class, so a VggFaceError's code and input travel as fields and the receiver rebuilds it.
 * Pure, importing nothing Node-specific, so the browser's worker uses it as Node's do.
 */
import { VggFaceError, type ErrorCode } from '../errors.js';

export interface SerializedError {
  /** Set only for a VggFaceError: what the receiver does with an error without one is its own choice. */
  readonly code?: ErrorCode;
  readonly message: string;
  readonly input?: string;
}

export function serializeError(err: unknown): SerializedError {
  const e = err as Partial<VggFaceError> | undefined;
  return {
    code: err instanceof VggFaceError ? err.code : undefined,
    message: e?.message ?? String(err),
    input: e?.input,
  };
}
