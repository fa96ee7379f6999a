/**
 * What the server serves besides the API: the web pages (`/` talks to the API; `/local` runs everything in the
 * browser with `vggface/browser`; both import what they share from `/common.js`), the browser library and
 * onnxruntime-web's files (`/vggface/browser/*`, from dist/browser), the YuNet detector the server uses
 * (`/detector.onnx`) and, with `--models DIR`, the converted models in DIR (`/models/NAME.onnx`), read-only.
 *
 * Every answer is cross-origin isolated (COOP same-origin, COEP require-corp): onnxruntime-web needs
 * SharedArrayBuffer for WebAssembly threads. Files are revalidated by ETag (Cache-Control: no-cache), so a reload
 * costs a 304, not another download of the model; and they answer single byte ranges (206), so a download that
 * broke off can resume where it stopped rather than fetch the 139-550 MB again.
 */
import { constants, readFileSync } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { invalidParameterError } from '../errors.js';
import { ApiError } from './api-error.js';

/** The web pages, served as they are in the repository (web/). */
const WEB_DIR = new URL('../../../web/', import.meta.url);
/** `npm run build:browser`'s output. */
const BROWSER_DIR = new URL('../../browser/', import.meta.url);
const WEB_FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
  '/local': { file: 'local.html', type: 'text/html; charset=utf-8' },
  '/local.js': { file: 'local.js', type: 'text/javascript; charset=utf-8' },
  '/common.js': { file: 'common.js', type: 'text/javascript; charset=utf-8' },
};
/** The pages load nothing from elsewhere and show the photos they were given as blob: URLs. */
const CSP_BASE =
  "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri " +
  "'none'; frame-ancestors 'none'; form-action 'self'";
/** `/local`, the library and its worker also compile onnxruntime-web's WebAssembly (a worker's CSP is its script's). */
export const CONTENT_SECURITY_POLICY = {
  api: CSP_BASE,
  local: `${CSP_BASE}; script-src 'self' 'wasm-unsafe-eval'`,
};
/** Cross-origin isolation: without it there is no SharedArrayBuffer, so onnxruntime-web runs on one thread. */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
} as const;

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.map': 'application/json; charset=utf-8',
  '.onnx': 'application/octet-stream',
};

export interface StaticOptions {
  /** The folder `--models` names, resolved by {@link resolveModelsDir}. */
  readonly modelsDir?: string;
  /** The YuNet file the server detects faces with. */
  readonly detectorModel?: string;
}

/**
 * Checks `--models DIR` before the server starts: it must be a folder. Returns its real path (symbolic links resolved).
 */
export async function resolveModelsDir(dir: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(dir);
    if ((await stat(real)).isDirectory()) return real;
  } catch {}
  throw invalidParameterError('--models', 'a folder of converted .onnx models', dir);
}

/**
 * A strong validator from what changes whenever the file does: its inode (a file replaced by a rename gets a new
 * one), size and modification time in nanoseconds. Hashing would read 540 MB per request.
 */
const etagOf = (s: { ino: bigint; size: bigint; mtimeNs: bigint }) =>
  `"${s.ino.toString(36)}-${s.size.toString(36)}-${s.mtimeNs.toString(36)}"`;

/** RFC 9110 If-None-Match: a list of entity tags (weak comparison) or `*`. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === bare(etag));
}

/** What a Range header asks of a file: all of it, the bytes `start` to `end` (inclusive), or nothing it has. */
export type ByteRange =
  | { readonly kind: 'whole' }
  | { readonly kind: 'part'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' };

const WHOLE: ByteRange = { kind: 'whole' };

/**
 * RFC 9110 Range for a file of `size` bytes: one range `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n bytes).
 * Several ranges (`bytes=0-1,5-9`) get the whole file, which RFC 9110 allows: a multipart/byteranges answer would
 * be needed otherwise, and no client of these files (a browser, curl, a resuming download) asks for one. So do
 * other units and a header that is not a range at all, which a server must ignore. A range starting at or past
 * the end, `bytes=-0`, and one whose last byte comes before its first are unsatisfiable (416), as Node's
 * range-parser (express, fastify-static) has it.
 */
export function byteRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return WHOLE;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return WHOLE;
  const unsatisfiable: ByteRange = { kind: 'unsatisfiable' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    return suffix === 0 || size === 0
      ? unsatisfiable
      : { kind: 'part', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (start >= size || last < start) return unsatisfiable;
  return { kind: 'part', start, end: Math.min(last, size - 1) };
}

/**
 * RFC 9110 If-Range: the range is sent only if the file is still the one the client has part of, by its entity tag
 * compared strongly (a weak tag never matches); otherwise the whole file. A date is never a match: these answers
 * carry no Last-Modified, so a client has no date of ours to send, and the whole file is always correct.
 */
export function ifRangeMatches(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return true;
  // Sent twice, it is not one validator: the whole file.
  if (Array.isArray(header)) return false;
  const tag = header.trim();
  return !tag.startsWith('W/') && tag === etag;
}

/**
 * Serves `name` from `dir`, read-only, or answers 404: `name` is one path segment (no `/`, `\`, NUL, leading dot)
 * ending in one of `extensions`; a symbolic link is followed only when its target is inside `dir`; anything but a
 * regular file (folder, FIFO, device, socket) is refused. The file is opened once and streamed from that descriptor,
 * so what is checked is what is sent.
 */
async function sendFile(
  request: FastifyRequest,
  reply: FastifyReply,
  dir: string,
  name: string,
  extensions: readonly string[],
  what: string,
  csp?: string,
): Promise<unknown> {
  const missing = () => new ApiError(404, 'not_found', `no ${what} ${JSON.stringify(name.slice(0, 200))}`);
  if (name === '' || name.startsWith('.') || /[/\\\0]/.test(name) || !extensions.some((e) => name.endsWith(e)))
    throw missing();
  let real: string;
  let root: string;
  try {
    [root, real] = await Promise.all([realpath(dir), realpath(join(dir, name))]);
  } catch {
    throw missing();
  }
  if (!real.startsWith(root.endsWith(sep) ? root : root + sep)) throw missing();
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer. O_NOFOLLOW: the path was just resolved.
  const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    () => undefined,
  );
  if (!handle) throw missing();
  let keep = false;
  try {
    const s = await handle.stat({ bigint: true });
    if (!s.isFile()) throw missing();
    const etag = etagOf(s);
    void reply.headers({
      ...ISOLATION_HEADERS,
      ETag: etag,
      'Cache-Control': 'no-cache',
      'Accept-Ranges': 'bytes',
      'X-Content-Type-Options': 'nosniff',
    });
    if (csp) void reply.header('Content-Security-Policy', csp);
    // If-None-Match first (RFC 9110 section 13.2.2): a client whose copy is current gets a 304 whatever it asks.
    if (noneMatch(request.headers['if-none-match'], etag)) return reply.code(304).send();
    const size = Number(s.size);
    const asked = request.headers.range;
    const range = ifRangeMatches(request.headers['if-range'], etag) ? byteRange(asked, size) : WHOLE;
    if (range.kind === 'unsatisfiable') {
      const message =
        `Expected a byte range within the ${size} bytes of ${what} ${JSON.stringify(name.slice(0, 200))} ` +
        `but received Range ${JSON.stringify(String(asked).slice(0, 200))}`;
      return reply
        .code(416)
        .header('Content-Range', `bytes */${size}`)
        .send(new ApiError(416, 'range_not_satisfiable', message).body());
    }
    const ext = name.slice(name.lastIndexOf('.'));
    void reply.type(TYPES[ext] ?? 'application/octet-stream');
    const { start, end } = range.kind === 'part' ? range : { start: 0, end: size - 1 };
    if (range.kind === 'part') void reply.code(206).header('Content-Range', `bytes ${start}-${end}/${size}`);
    void reply.header('Content-Length', String(end - start + 1));
    // HEAD gets the headers GET would (RFC 9110 section 9.3.2), a range's included, and no body.
    if (request.method === 'HEAD' || size === 0) return reply.send();
    keep = true;
    // Only the slice asked for is read, in chunks, from the descriptor checked above.
    return reply.send(handle.createReadStream({ start, end }));
  } finally {
    if (!keep) await handle.close();
  }
}

export function registerStaticRoutes(app: FastifyInstance, options: StaticOptions): void {
  const web = Object.entries(WEB_FILES).map(([url, f]) => ({
    url,
    body: readFileSync(new URL(f.file, WEB_DIR)),
    type: f.type,
  }));
  for (const file of web) {
    // /common.js, which both pages import, runs no WebAssembly itself: it gets the policy of / and /app.js.
    const csp =
      file.url === '/local' || file.url === '/local.js' ? CONTENT_SECURITY_POLICY.local : CONTENT_SECURITY_POLICY.api;
    app.get(file.url, { config: { access: 'open' } }, async (_request, reply) => {
      void reply.type(file.type).headers({
        ...ISOLATION_HEADERS,
        'Content-Security-Policy': csp,
        'X-Content-Type-Options': 'nosniff',
        'Cache-Control': 'no-cache',
      });
      return file.body;
    });
  }
  // GET and HEAD declared together: fastify's own HEAD route would read the whole file and answer Content-Length 0.
  const files = (url: string, handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) =>
    app.route({ method: ['GET', 'HEAD'], url, config: { access: 'open' }, handler });
  const browserDir = fileURLToPath(BROWSER_DIR);
  files('/vggface/browser/:file', async (request, reply) => {
    const name = (request.params as { file: string }).file;
    try {
      return await sendFile(
        request,
        reply,
        browserDir,
        name,
        ['.js', '.mjs', '.wasm', '.map'],
        'file of the browser library',
        CONTENT_SECURITY_POLICY.local,
      );
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && name === 'vggface.js') {
        throw new ApiError(404, 'not_found', 'the browser library is not built: run npm run build:browser');
      }
      throw err;
    }
  });
  files('/detector.onnx', async (request, reply) => {
    if (options.detectorModel === undefined)
      throw new ApiError(404, 'not_found', 'this server was started without --detector-model');
    // The one file the server was given, whatever its name.
    const real = await realpath(options.detectorModel).catch(() => options.detectorModel!);
    return sendFile(request, reply, dirname(real), basename(real), [''], 'detector model');
  });
  // No route for /models/ itself: the folder is never listed.
  files('/models/:name', async (request, reply) => {
    const name = (request.params as { name: string }).name;
    if (options.modelsDir === undefined)
      throw new ApiError(404, 'not_found', 'no models are served: start the server with --models DIR');
    return sendFile(request, reply, options.modelsDir, name, ['.onnx'], 'model');
  });
}
