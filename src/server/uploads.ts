/**
 * Request bodies with images: a multipart form becomes the same object a JSON body is (`images` plus option
 * fields), with each file an {@link Upload}, before fastify validates it, so one schema per route covers both.
 * Multipart sizes are bounded here: @fastify/multipart checks each file, not the whole body.
 *
 * The event loop must not stall on a large upload, so a file's bytes are never copied in one go: each chunk is
 * copied as it arrives into one buffer per request (sized by Content-Length), and that buffer is then moved to the
 * inference worker, not copied. Measured with six concurrent 23 MB uploads: concatenating each file at its end and
 * cloning it to the worker held the event loop for 40-130 ms at a time.
 */
import type { FastifyRequest } from 'fastify';
import type { Multipart } from '@fastify/multipart';
import { ApiError } from './api-error.js';
import type { JobImage } from './protocol.js';

/** An uploaded file, read into memory. */
export class Upload {
  constructor(
    /** A view of its request's {@link UploadBuffer}. */
    readonly data: Buffer,
    /** The file name the client gave, made safe to echo (printable, at most 256 characters). */
    readonly name: string | undefined,
  ) {}
}

/** The ajv keyword `upload: true`: the value must be an {@link Upload}. */
export const uploadKeyword = {
  keyword: 'upload',
  schemaType: 'boolean',
  errors: false,
  validate: (schema: boolean, data: unknown) => !schema || data instanceof Upload,
} as const;

const safeName = (name: string | undefined): string | undefined => {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this removes
  const cleaned = (name ?? '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 256);
  return cleaned === '' ? undefined : cleaned;
};

export interface MultipartLimits {
  readonly maxBodyBytes: number;
  readonly maxImages: number;
}

/** Multipart limits for @fastify/multipart (busboy): per file, files, fields. */
export function busboyLimits(limits: MultipartLimits) {
  return {
    fileSize: limits.maxBodyBytes,
    files: limits.maxImages,
    fields: 32,
    fieldSize: 4096,
    parts: limits.maxImages + 32,
    headerPairs: 100,
  };
}

/**
 * Reads a multipart request into `{images: Upload[], field: value, ...}`. Files must be in fields named `images`;
 * a text field given twice becomes an array (which the schema then refuses).
 */
export async function readMultipartBody(
  request: FastifyRequest,
  limits: MultipartLimits,
): Promise<Record<string, unknown>> {
  try {
    return await readParts(request, limits);
  } catch (err) {
    throw multipartError(err);
  }
}

/** busboy's framing errors (plain Errors) and what each means to the client. */
const FRAMING_ERRORS: readonly [RegExp, string][] = [
  [
    /boundary not found|boundary required|needle cannot be an empty/i,
    'the Content-Type has no boundary (multipart/form-data; boundary=...)',
  ],
  [/needle cannot have a length bigger/i, 'the boundary of the Content-Type is over 70 characters'],
  [
    /unexpected end of multipart data/i,
    'the body ends before its closing boundary (cut short, or not framed by the boundary of its Content-Type)',
  ],
];

/**
 * The framing errors of a multipart body (no boundary in the Content-Type, a body that ends before its closing
 * boundary) are the client's: 400. Limits (413) and the project's own errors pass as they are.
 */
function multipartError(err: unknown): unknown {
  const message = String((err as Error)?.message ?? '');
  const problem = err instanceof ApiError ? undefined : FRAMING_ERRORS.find(([pattern]) => pattern.test(message))?.[1];
  return problem === undefined ? err : new ApiError(400, 'invalid_multipart', `malformed multipart body: ${problem}`);
}

/**
 * The files of one request, one after another in one buffer: at most the request's Content-Length (else the body
 * limit), allocated untouched, so memory is only used as chunks are copied in.
 */
class UploadBuffer {
  private buffer: Buffer | undefined;
  private used = 0;

  constructor(
    private readonly capacity: number,
    private readonly maxBodyBytes: number,
  ) {}

  /** Reads a file's stream into the buffer, chunk by chunk. */
  async read(file: AsyncIterable<Buffer> & { truncated?: boolean }): Promise<Buffer> {
    const start = this.used;
    for await (const chunk of file) {
      if (this.used + chunk.length > this.capacity) throw tooLarge(this.maxBodyBytes);
      this.buffer ??= Buffer.allocUnsafeSlow(this.capacity);
      chunk.copy(this.buffer, this.used);
      this.used += chunk.length;
    }
    if (file.truncated) throw tooLarge(this.maxBodyBytes); // busboy's per-file limit
    return (this.buffer ?? Buffer.alloc(0)).subarray(start, this.used);
  }
}

const tooLarge = (limit: number) =>
  new ApiError(413, 'body_too_large', `the request body is over the server's limit of ${limit} bytes`);

async function readParts(request: FastifyRequest, limits: MultipartLimits): Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = {};
  const images: Upload[] = [];
  const length = Number(request.headers['content-length']);
  const files = new UploadBuffer(
    Number.isSafeInteger(length) && length >= 0 ? Math.min(length, limits.maxBodyBytes) : limits.maxBodyBytes,
    limits.maxBodyBytes,
  );
  for await (const part of request.parts({ limits: busboyLimits(limits) }) as AsyncIterable<Multipart>) {
    if (part.type === 'file') {
      if (part.fieldname !== 'images') {
        part.file.resume();
        throw new ApiError(
          400,
          'invalid_request',
          `unexpected file field "${safeName(part.fieldname) ?? ''}": send images in fields named images`,
        );
      }
      images.push(new Upload(await files.read(part.file), safeName(part.filename)));
    } else {
      const value = String(part.value);
      const prev = body[part.fieldname];
      body[part.fieldname] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  if (images.length > 0 || body.images === undefined) body.images = images;
  return body;
}

/**
 * The images of a validated body, JSON or multipart, as the workers take them, and the buffers to move to the
 * worker with them (the uploads' request buffer: nothing else holds it).
 */
export function jobImages(images: readonly (Upload | { data: string; name?: string })[]): {
  images: JobImage[];
  transfer: ArrayBuffer[];
} {
  const transfer = new Set<ArrayBuffer>();
  const jobs = images.map((img) => {
    if (!(img instanceof Upload)) return { data: img.data, name: img.name };
    if (img.data.byteLength > 0) transfer.add(img.data.buffer as ArrayBuffer);
    return { data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength), name: img.name };
  });
  return { images: jobs, transfer: [...transfer] };
}
