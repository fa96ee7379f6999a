/**
 * Every error vggface raises on purpose is a {@link VggFaceError}: it carries a stable `code`,
 * the input it is about (a path, a flag, a layer) and the process exit code the CLI uses.
 * Messages name the input and the problem; they never carry a stack trace to end users.
 */
export type ErrorCode =
  | 'E_USAGE' // a bad flag or argument (exit 2)
  | 'E_NOT_FOUND' // a path that does not exist
  | 'E_IO' // a path that cannot be read or written
  | 'E_FORMAT' // a file that is not what it claims to be, or is corrupt/truncated
  | 'E_UNSAFE' // a file that tries to do something it must not (hostile pickle, oversized header)
  | 'E_TOPOLOGY' // weights that do not have the VGG-Face topology
  | 'E_IMAGE' // an input that is not a decodable image, or is too large
  | 'E_NETWORK' // a download that failed
  | 'E_MODEL' // an ONNX model that cannot be used
  | 'E_GALLERY' // a gallery store problem
  | 'E_QUEUE' // a bulk-extraction queue problem (unknown run, model mismatch, database)
  | 'E_INTERNAL';

export class VggFaceError extends Error {
  readonly code: ErrorCode;
  /** The input the error is about: a path, a flag name, a layer name. */
  readonly input: string | undefined;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: { input?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VggFaceError';
    this.code = code;
    this.input = options.input;
    this.exitCode = code === 'E_USAGE' ? 2 : 1;
  }
}

/** A usage error (bad flag or argument): exit code 2. */
export function usageError(message: string, input?: string): VggFaceError {
  return new VggFaceError('E_USAGE', message, { input });
}

/**
 * The single place parameter errors are phrased, after sharp's lib/is.js:
 * "Expected <expected> for <name> but received <actual>".
 */
export function invalidParameterError(name: string, expected: string, actual: unknown): VggFaceError {
  return usageError(`Expected ${expected} for ${name} but received ${describeValue(actual)}`, name);
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? value.slice(0, 77) + '...' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return `array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of ${value.byteLength} bytes`;
  return typeof value === 'object' ? `object ${value.constructor?.name ?? 'Object'}` : typeof value;
}

/** Turns a Node.js file-system error into a VggFaceError that names the path. */
export function fileError(path: string, err: unknown, action = 'read'): VggFaceError {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return new VggFaceError('E_NOT_FOUND', `${path}: no such file or directory`, { input: path, cause: err });
    case 'EISDIR':
      return new VggFaceError('E_IO', `${path}: is a directory, expected a file`, { input: path, cause: err });
    case 'EACCES':
    case 'EPERM':
      return new VggFaceError('E_IO', `${path}: permission denied (cannot ${action})`, { input: path, cause: err });
    case 'ENOSPC':
      return new VggFaceError('E_IO', `${path}: no space left on device`, { input: path, cause: err });
    case 'ENOTDIR':
      return new VggFaceError('E_IO', `${path}: a parent of this path is not a directory`, { input: path, cause: err });
    default:
      return new VggFaceError('E_IO', `${path}: cannot ${action}: ${e?.message ?? String(err)}`, {
        input: path,
        cause: err,
      });
  }
}

export function formatError(path: string, problem: string, cause?: unknown): VggFaceError {
  return new VggFaceError('E_FORMAT', `${path}: ${problem}`, { input: path, cause });
}
