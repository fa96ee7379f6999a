/**
 * Resumable, atomic HTTP(S) download into a file.
 * Bytes go to `<dest>.part`; a later call resumes with a Range request when the server still has the same
 * resource (If-Range on the ETag/Last-Modified recorded beside the part), else restarts. Only a complete,
 * size-checked download is renamed to `dest`.
 *
 * Failures name the URL and the reason: a host name that does not resolve, a refused connection, an HTTP status, a
 * size that is not the expected one, a server that stops sending (no byte for `idleTimeoutMs`, before or during the
 * body), a full disk. A transfer cut after some bytes keeps its `.part` to be resumed; anything else (nothing received,
 * a refused size, a write error such as a full disk) leaves nothing behind.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileError, VggFaceError } from '../errors.js';
import { checkOutputPath } from './files.js';

export interface DownloadProgress {
  readonly received: number;
  /** Total bytes, when the server says. */
  readonly total: number | undefined;
  readonly resumedFrom: number;
}

export interface DownloadOptions {
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Abort when no byte arrives for this long, waiting for the answer or during the body (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** What to tell the user to do when the download fails (appended to the error). */
  readonly hint?: string;
  /** Refuse a download larger than this many bytes. */
  readonly maxBytes?: number;
  /** Refuse a download smaller than this many bytes (an error page served with status 200). */
  readonly minBytes?: number;
  /** The exact size the file must have, when it is published: a server announcing another size is refused at once. */
  readonly expectedBytes?: number;
  /** Opens the part file for writing (tests inject write errors here). */
  readonly openOutput?: (path: string, append: boolean) => Writable;
}

interface PartMeta {
  url: string;
  validator?: string;
}

/** Errors of the local file system while writing (as opposed to the network). */
const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EIO', 'EFBIG', 'EISDIR', 'ENOTDIR']);

function isWriteError(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as NodeJS.ErrnoException)?.code;
  return typeof code === 'string' && WRITE_ERRORS.has(code);
}

/** Why a request failed, in words: the system code first (ENOTFOUND, ECONNREFUSED), then what it means. */
export function networkReason(url: string, err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
    let host = url;
    try {
      host = new URL(url).hostname;
    } catch {
      // keep the URL
    }
    return `${code} (the host name ${host} does not resolve: no DNS answer for it, or no network)`;
  }
  return code ?? cause?.message ?? (err as Error)?.message ?? String(err);
}

function networkError(url: string, err: unknown, hint?: string): VggFaceError {
  return new VggFaceError('E_NETWORK', `cannot download ${url}: ${networkReason(url, err)}${hint ? `. ${hint}` : ''}`, {
    input: url,
    cause: err,
  });
}

async function removePart(part: string, metaPath: string): Promise<void> {
  await rm(part, { force: true });
  await rm(metaPath, { force: true });
}

export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const part = `${dest}.part`;
  const metaPath = `${part}.json`;
  try {
    await mkdir(dirname(dest), { recursive: true });
  } catch (err) {
    throw fileError(dirname(dest), err, 'create');
  }
  // The cache's own files: nothing but regular files (or nothing) may sit where they are written.
  for (const p of [dest, part, metaPath]) checkOutputPath(p);

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
  const stalled = () => new Error(`no data for ${idleMs / 1000} s`);
  let timer = setTimeout(() => controller.abort(stalled()), idleMs);
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(stalled()), idleMs);
  };

  let received = offset;
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
    touch();
    let append = false;
    let total: number | undefined;
    if (res.status === 206 && offset > 0) {
      const m = /bytes (\d+)-(\d+)\/(\d+)/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        await res.body?.cancel();
        throw new VggFaceError(
          'E_NETWORK',
          `cannot resume ${url}: server answered range ${res.headers.get('content-range')}, expected bytes ${offset}-`,
          { input: url },
        );
      }
      append = true;
      total = Number(m[3]);
    } else if (res.status === 200) {
      offset = 0;
      received = 0;
      const len = res.headers.get('content-length');
      total = len === null ? undefined : Number(len);
    } else {
      await res.body?.cancel();
      throw new VggFaceError(
        'E_NETWORK',
        `cannot download ${url}: HTTP ${res.status} ${res.statusText}${options.hint ? `. ${options.hint}` : ''}`,
        { input: url },
      );
    }
    const refuse = async (why: string) => {
      await res.body?.cancel();
      await removePart(part, metaPath);
      return new VggFaceError('E_NETWORK', `refusing ${url}: ${why}`, { input: url });
    };
    if (total !== undefined && options.maxBytes !== undefined && total > options.maxBytes) {
      throw await refuse(`${total} bytes exceeds the limit of ${options.maxBytes}`);
    }
    if (total !== undefined && options.expectedBytes !== undefined && total !== options.expectedBytes) {
      throw await refuse(
        `wrong size: the server sends ${total} bytes, the published file has ${options.expectedBytes}`,
      );
    }
    if (total !== undefined && options.minBytes !== undefined && total < options.minBytes) {
      throw await refuse(`${total} bytes is too small to be the file (at least ${options.minBytes} expected)`);
    }
    const validator = res.headers.get('etag') ?? res.headers.get('last-modified') ?? undefined;
    try {
      await writeFile(metaPath, JSON.stringify({ url, validator } satisfies PartMeta));
    } catch (err) {
      await res.body?.cancel();
      await removePart(part, metaPath);
      throw fileError(metaPath, err, 'write');
    }

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
    const output = options.openOutput
      ? options.openOutput(part, append)
      : createWriteStream(part, { flags: append ? 'a' : 'w' });
    try {
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), counter, output);
    } catch (err) {
      if (isWriteError(err)) {
        // The disk, not the network: what was written is of no use to a retry that will fail the same way, and keeping
        // it would hold the space. Say where, and how far it got.
        controller.abort();
        await removePart(part, metaPath);
        const e = fileError(part, err, 'write');
        throw new VggFaceError(
          'E_IO',
          `${e.message} while downloading ${url} (after ${received} bytes); the partial download was removed`,
          { input: part, cause: err },
        );
      }
      if (err instanceof VggFaceError) {
        await removePart(part, metaPath);
        throw err;
      }
      throw networkError(url, err, `${options.hint ? `${options.hint}. ` : ''}Run the same command again to resume`);
    }
    if (total !== undefined && received !== total) {
      throw new VggFaceError(
        'E_NETWORK',
        `download of ${url} incomplete: ${received} of ${total} bytes. Run the same command again to resume`,
        { input: url },
      );
    }
    if (options.expectedBytes !== undefined && received !== options.expectedBytes) {
      await removePart(part, metaPath);
      throw new VggFaceError(
        'E_NETWORK',
        `refusing ${url}: wrong size: received ${received} bytes, the published file has ${options.expectedBytes}`,
        { input: url },
      );
    }
    await rename(part, dest);
    await rm(metaPath, { force: true });
  } finally {
    clearTimeout(timer);
    // Nothing received: no partial download worth keeping.
    if (received === 0) await removePart(part, metaPath).catch(() => undefined);
  }
}
