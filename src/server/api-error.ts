/**
 * Errors as the HTTP API answers them: a status and `{error: {code, message}}`. Messages name the request part
 * and the problem; they never carry a stack trace, a file path or a database location (those go to the log).
 */
import { VggFaceError } from '../errors.js';

/** The body of every error answer. */
export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** What crosses a worker boundary (an Error's class does not). */
export interface ApiErrorData {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** Seconds, for 503s. */
  readonly retryAfter?: number;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static from(data: ApiErrorData): ApiError {
    return new ApiError(data.status, data.code, data.message, data.retryAfter);
  }

  toData(): ApiErrorData {
    return { status: this.status, code: this.code, message: this.message, retryAfter: this.retryAfter };
  }

  body(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

export const internalError = (): ApiError => new ApiError(500, 'internal', 'internal error (see the server log)');

/**
 * A library error about one uploaded image, as the API reports it. Only errors whose messages are about the
 * image itself (they begin with its label) are passed on; anything else is internal.
 */
export function imageApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof VggFaceError) {
    if (err.code === 'E_IMAGE') return new ApiError(422, 'invalid_image', err.message);
    if (err.code === 'E_USAGE') return new ApiError(400, 'invalid_request', err.message);
  }
  return internalError();
}

/**
 * The whole HTTP answer to a request the HTTP parser refused before fastify saw it (fastify's clientErrorHandler):
 * headers over Node's size limit (431), a request not received in time (408), anything else that is not HTTP (400).
 */
export function clientErrorResponse(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  const api =
    code === 'HPE_HEADER_OVERFLOW'
      ? new ApiError(431, 'headers_too_large', 'the request headers are over the server’s size limit')
      : code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new ApiError(408, 'request_timeout', 'the request was not received within the server’s time limit')
        : new ApiError(400, 'bad_request', 'the request is not valid HTTP');
  const body = JSON.stringify(api.body());
  const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[api.status];
  return (
    `HTTP/1.1 ${api.status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
