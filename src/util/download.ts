/**
 * Resumable, atomic HTTP(S) download into a file.
 * Bytes go to `<dest>.part`; a later call resumes with a Range request when the server still has the same
 * resource (If-Range on the ETag/Last-Modified recorded beside the part), else restarts. Only a complete,
 * size-checked download is renamed to `dest`.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { VggFaceError } from '../errors.js';

export interface DownloadProgress {
  readonly received: number;
  /** Total bytes, when the server says. */
  readonly total: number | undefined;
  readonly resumedFrom: number;
}

export interface DownloadOptions {
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Abort when no byte arrives for this long (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** What to tell the user to do when the download fails (appended to the error). */
  readonly hint?: string;
  /** Refuse a download larger than this many bytes. */
  readonly maxBytes?: number;
}

interface PartMeta {
  url: string;
  validator?: string;
}

function networkError(url: string, err: unknown, hint?: string): VggFaceError {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const reason = cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
  return new VggFaceError('E_NETWORK', `cannot download ${url}: ${reason}${hint ? `. ${hint}` : ''}`, { input: url, cause: err });
}

export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const part = `${dest}.part`;
  const metaPath = `${part}.json`;
  await mkdir(dirname(dest), { recursive: true });

  let offset = 0;
  let meta: PartMeta | undefined;
  try {
    meta = JSON.parse(await readFile(metaPath, 'utf8')) as PartMeta;
    offset = (await stat(part)).size;
    if (meta.url !== url || !meta.validator) offset = 0;
  } catch {
    offset = 0; // no usable partial download: start from the beginning
  }

  const controller = new AbortController();
  const idleMs = options.idleTimeoutMs ?? 60_000;
  let timer = setTimeout(() => controller.abort(new Error(`no data for ${idleMs / 1000} s`)), idleMs);
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new Error(`no data for ${idleMs / 1000} s`)), idleMs);
  };

  try {
    const headers: Record<string, string> = {};
    if (offset > 0 && meta?.validator) {
      headers.range = `bytes=${offset}-`;
      headers['if-range'] = meta.validator;
    }
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: controller.signal, redirect: 'follow' });
    } catch (err) {
      throw networkError(url, err, options.hint);
    }
    let append = false;
    let total: number | undefined;
    if (res.status === 206 && offset > 0) {
      const m = /bytes (\d+)-(\d+)\/(\d+)/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        await res.body?.cancel();
        throw new VggFaceError('E_NETWORK', `cannot resume ${url}: server answered range ${res.headers.get('content-range')}, expected bytes ${offset}-`, { input: url });
      }
      append = true;
      total = Number(m[3]);
    } else if (res.status === 200) {
      offset = 0;
      const len = res.headers.get('content-length');
      total = len === null ? undefined : Number(len);
    } else {
      await res.body?.cancel();
      throw new VggFaceError('E_NETWORK', `cannot download ${url}: HTTP ${res.status} ${res.statusText}${options.hint ? `. ${options.hint}` : ''}`, { input: url });
    }
    if (total !== undefined && options.maxBytes !== undefined && total > options.maxBytes) {
      await res.body?.cancel();
      throw new VggFaceError('E_NETWORK', `refusing ${url}: ${total} bytes exceeds the limit of ${options.maxBytes}`, { input: url });
    }
    const validator = res.headers.get('etag') ?? res.headers.get('last-modified') ?? undefined;
    await writeFile(metaPath, JSON.stringify({ url, validator } satisfies PartMeta));

    let received = offset;
    const resumedFrom = offset;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        touch();
        received += chunk.length;
        if (options.maxBytes !== undefined && received > options.maxBytes) {
          cb(new VggFaceError('E_NETWORK', `refusing ${url}: more than ${options.maxBytes} bytes`, { input: url }));
          return;
        }
        options.onProgress?.({ received, total, resumedFrom });
        cb(null, chunk);
      },
    });
    if (!res.body) throw new VggFaceError('E_NETWORK', `cannot download ${url}: empty response body`, { input: url });
    try {
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), counter, createWriteStream(part, { flags: append ? 'a' : 'w' }));
    } catch (err) {
      if (err instanceof VggFaceError) throw err;
      throw networkError(url, err, `${options.hint ? `${options.hint}. ` : ''}Run the same command again to resume`);
    }
    if (total !== undefined && received !== total) {
      throw new VggFaceError('E_NETWORK', `download of ${url} incomplete: ${received} of ${total} bytes. Run the same command again to resume`, { input: url });
    }
    await rename(part, dest);
    await rm(metaPath, { force: true });
  } finally {
    clearTimeout(timer);
  }
}
