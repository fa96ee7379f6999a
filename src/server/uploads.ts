/**
 * Request bodies with images: a multipart form becomes the same object a JSON body is (`images` plus option
 * fields), with each file an {@link Upload}, before fastify validates it, so one schema per route covers both.
 * Multipart sizes are bounded here: @fastify/multipart checks each file, not the whole body.
 */
import type { FastifyRequest } from 'fastify';
import type { Multipart } from '@fastify/multipart';
import { ApiError } from './api-error.js';
import type { JobImage } from './protocol.js';

/** An uploaded file, read into memory. */
export class Upload {
  constructor(
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
  const cleaned = (name ?? '').replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 256);
  return cleaned === '' ? undefined : cleaned;
};

export interface MultipartLimits {
  readonly maxBodyBytes: number;
  readonly maxImages: number;
}

/** Multipart limits for @fastify/multipart (busboy): per file, files, fields. */
export function busboyLimits(limits: MultipartLimits) {
  return { fileSize: limits.maxBodyBytes, files: limits.maxImages, fields: 32, fieldSize: 4096, parts: limits.maxImages + 32, headerPairs: 100 };
}

/**
 * Reads a multipart request into `{images: Upload[], field: value, ...}`. Files must be in fields named `images`;
 * a text field given twice becomes an array (which the schema then refuses).
 */
export async function readMultipartBody(request: FastifyRequest, limits: MultipartLimits): Promise<Record<string, unknown>> {
  const body: Record<string, unknown> = {};
  const images: Upload[] = [];
  let total = 0;
  for await (const part of request.parts({ limits: busboyLimits(limits) }) as AsyncIterable<Multipart>) {
    if (part.type === 'file') {
      if (part.fieldname !== 'images') {
        part.file.resume();
        throw new ApiError(400, 'invalid_request', `unexpected file field "${safeName(part.fieldname) ?? ''}": send images in fields named images`);
      }
      const data = await part.toBuffer();
      total += data.length;
      if (total > limits.maxBodyBytes) throw new ApiError(413, 'body_too_large', `the request body is over the server's limit of ${limits.maxBodyBytes} bytes`);
      images.push(new Upload(data, safeName(part.filename)));
    } else {
      const value = String(part.value);
      const prev = body[part.fieldname];
      body[part.fieldname] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  if (images.length > 0 || body.images === undefined) body.images = images;
  return body;
}

/** The images of a validated body, JSON or multipart, as the workers take them. */
export function jobImages(images: readonly (Upload | { data: string; name?: string })[]): JobImage[] {
  return images.map((img) => (img instanceof Upload ? { data: new Uint8Array(img.data.buffer, img.data.byteOffset, img.data.byteLength), name: img.name } : { data: img.data, name: img.name }));
}
