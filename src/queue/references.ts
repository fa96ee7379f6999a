/**
 * What a run's photos are: paths on storage every worker sees, or http(s) URLs. A worker reads each into memory
 * once (its sha256 is computed from the same bytes the model sees), within limits: a size cap for both, and for
 * URLs a time limit, a bounded number of redirects (each hop checked again), an image content type, and an
 * optional allow-list of URL prefixes, so a worker fetches only what its operator allows.
 */
import { open } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { usageError } from '../errors.js';

export interface FetchLimits {
  /** Largest photo read, in bytes (files and URLs). */
  readonly maxBytes: number;
  /** Whole-request time limit for a URL, in ms. */
  readonly timeoutMs: number;
  readonly maxRedirects: number;
  /** When given, every URL (and every redirect target) must start with one of these. */
  readonly allowPrefixes?: readonly string[];
}

export const DEFAULT_LIMITS: FetchLimits = { maxBytes: 64 * 1024 * 1024, timeoutMs: 30_000, maxRedirects: 5 };

export type ReadOutcome =
  | { readonly bytes: Buffer; readonly error?: undefined }
  | { readonly bytes?: undefined; readonly error: string };

export const isUrl = (ref: string) => /^https?:\/\//i.test(ref);

/**
 * Checks and normalises a submitted reference: http(s) URLs as given, paths made absolute (workers run elsewhere,
 * in other folders). Other URL schemes are refused.
 */
export function normalizeReference(ref: string, cwd = process.cwd()): string {
  if (isUrl(ref)) {
    try {
      new URL(ref);
    } catch {
      throw usageError(`${ref}: not a valid URL`, ref);
    }
    return ref;
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(ref);
  if (scheme)
    throw usageError(
      `${ref}: ${scheme[1]}:// references are not supported (use a path every worker sees, or an http(s) URL)`,
      ref,
    );
  if (/[\r\n]/.test(ref)) throw usageError(`${JSON.stringify(ref)}: a reference cannot contain a line break`, ref);
  return isAbsolute(ref) ? ref : resolve(cwd, ref);
}

/** Reads one reference into memory, or says why it could not be read. Never throws. */
export async function readReference(ref: string, limits: FetchLimits): Promise<ReadOutcome> {
  try {
    return isUrl(ref) ? await readUrl(ref, limits) : await readPath(ref, limits.maxBytes);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function readPath(path: string, maxBytes: number): Promise<ReadOutcome> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      error:
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EACCES'
            ? 'permission denied'
            : code === 'EISDIR'
              ? 'is a directory'
              : (err as Error).message,
    };
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) return { error: 'is a directory' };
    if (st.size > maxBytes) return { error: `${st.size} bytes, over the limit of ${maxBytes}` };
    const bytes = await fh.readFile();
    if (bytes.length > maxBytes) return { error: `over the limit of ${maxBytes} bytes` };
    return { bytes };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { error: code === 'EISDIR' ? 'is a directory' : (err as Error).message };
  } finally {
    await fh.close();
  }
}

function allowed(url: string, prefixes: readonly string[] | undefined): boolean {
  return !prefixes || prefixes.length === 0 || prefixes.some((p) => url.startsWith(p));
}

async function readUrl(first: string, limits: FetchLimits): Promise<ReadOutcome> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  let url = first;
  for (let hop = 0; ; hop++) {
    if (!/^https?:$/.test(new URL(url).protocol))
      return { error: `redirected to ${url}: only http and https are fetched` };
    if (!allowed(url, limits.allowPrefixes))
      return {
        error:
          hop === 0
            ? 'not under an allowed URL prefix (worker --allow-url-prefix)'
            : `redirected to ${url}, which is not under an allowed URL prefix`,
      };
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'manual', signal, headers: { accept: 'image/*' } });
    } catch (err) {
      if (signal.aborted) return { error: `no complete answer within ${limits.timeoutMs / 1000} s` };
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return { error: `cannot fetch: ${cause?.code ?? cause?.message ?? (err as Error).message}` };
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel().catch(() => {});
      if (hop >= limits.maxRedirects) return { error: `more than ${limits.maxRedirects} redirects` };
      url = new URL(res.headers.get('location')!, url).toString();
      continue;
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      return { error: `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}` };
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    if (!type.startsWith('image/') && type !== 'application/octet-stream') {
      await res.body?.cancel().catch(() => {});
      return { error: `content type ${type || '(none)'} is not an image` };
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > limits.maxBytes) {
      await res.body?.cancel().catch(() => {});
      return { error: `${declared} bytes, over the limit of ${limits.maxBytes}` };
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        size += chunk.length;
        // Leaving the loop cancels the stream (the iterator's return()).
        if (size > limits.maxBytes) return { error: `over the limit of ${limits.maxBytes} bytes` };
        chunks.push(Buffer.from(chunk));
      }
    } catch (err) {
      if (signal.aborted) return { error: `no complete answer within ${limits.timeoutMs / 1000} s` };
      return { error: `cannot fetch: ${(err as Error).message}` };
    }
    return { bytes: Buffer.concat(chunks, size) };
  }
}
