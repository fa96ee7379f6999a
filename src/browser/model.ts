/**
 * Model bytes for the browser: from a URL (streamed, with progress; kept in Cache Storage when asked, so a reload
 * does not download it again), a File/Blob the user picked, or an ArrayBuffer / typed array already in memory.
 */
import { VggFaceError, invalidParameterError } from '../errors.js';
import type { DownloadProgress } from '../util/download.js';

export type ModelSource = string | URL | Blob | ArrayBuffer | ArrayBufferView;

export interface ModelBytes {
  readonly bytes: Uint8Array;
  /** Names the model in messages: the URL, the file's name, or "model". */
  readonly label: string;
  /** The bytes are this library's own (fetched or read), so they may be moved to the worker. */
  readonly owned: boolean;
}

export interface FetchModelOptions {
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Cache Storage name to keep URL models in; false (default) uses the HTTP cache only. */
  readonly cache?: string | false;
}

/** The response to read, and the Cache Storage write that completes once it has been read (if caching). */
async function download(
  url: string,
  options: FetchModelOptions,
): Promise<{ res: Response; stored?: Promise<unknown> }> {
  const cache =
    options.cache && typeof caches !== 'undefined'
      ? await caches.open(options.cache).catch(() => undefined)
      : undefined;
  const hit = await cache?.match(url);
  if (hit) return { res: hit };
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new VggFaceError('E_NETWORK', `${url}: cannot fetch the model (${(err as Error).message})`, {
      input: url,
      cause: err,
    });
  }
  if (!res.ok)
    throw new VggFaceError('E_NETWORK', `${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`, {
      input: url,
    });
  if (!cache || !res.body) return { res };
  // Stored as it streams in; a failed write only costs the next load a download.
  const [mine, kept] = res.body.tee();
  const stored = cache.put(url, new Response(kept, { headers: res.headers })).catch(() => undefined);
  return { res: new Response(mine, { headers: res.headers }), stored };
}

async function readAll(res: Response, label: string, onProgress: FetchModelOptions['onProgress']): Promise<Uint8Array> {
  const total = Number(res.headers.get('content-length')) || undefined;
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  let buf = new Uint8Array(total ?? 1 << 20);
  let received = 0;
  onProgress?.({ received, total, resumedFrom: 0 });
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw new VggFaceError(
        'E_NETWORK',
        `${label}: the download failed after ${received} bytes (${(err as Error).message})`,
        { input: label, cause: err },
      );
    }
    if (chunk.done) break;
    const v = chunk.value;
    if (received + v.length > buf.length) {
      const grown = new Uint8Array(Math.max(buf.length * 2, received + v.length));
      grown.set(buf.subarray(0, received));
      buf = grown;
    }
    buf.set(v, received);
    received += v.length;
    onProgress?.({ received, total, resumedFrom: 0 });
  }
  return received === buf.length ? buf : buf.slice(0, received);
}

/** Reads a model source into memory. */
export async function readModel(
  source: ModelSource,
  what: string,
  options: FetchModelOptions = {},
): Promise<ModelBytes> {
  if (typeof source === 'string' || source instanceof URL) {
    const url = new URL(String(source), typeof location === 'undefined' ? undefined : location.href).href;
    const label = String(source);
    const { res, stored } = await download(url, options);
    const bytes = await readAll(res, label, options.onProgress);
    await stored;
    return { bytes, label, owned: true };
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    const label = typeof File !== 'undefined' && source instanceof File && source.name ? source.name : what;
    return { bytes: new Uint8Array(await source.arrayBuffer()), label, owned: true };
  }
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source), label: what, owned: false };
  if (ArrayBuffer.isView(source))
    return { bytes: new Uint8Array(source.buffer, source.byteOffset, source.byteLength), label: what, owned: false };
  throw invalidParameterError(what, 'a URL, a File or Blob, an ArrayBuffer or a Uint8Array', source);
}
