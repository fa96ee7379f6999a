/**
 * DNS rebinding: a page of any web site can point its own name at 127.0.0.1 (or the server's LAN address) and then
 * talk to this server as its own origin, reading the gallery and search results. What it cannot change is the
 * Host header, which carries its name. So a request is answered only when its Host names the server as it is
 * reachable: `localhost`, the listen address, the addresses a listen name resolves to, and the names given as
 * allowed hosts (--allowed-host, for a reverse proxy or a DNS name). Listening on every interface (0.0.0.0, ::),
 * any IP literal is taken: the server is reachable at addresses it cannot list (NAT, a container's published port),
 * and an IP literal cannot be rebound (the page's origin would be that address itself). Ports are not compared (a
 * proxy may forward another). A request without a Host header (HTTP/1.0) is answered: browsers always send one.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { usageError, VggFaceError } from '../errors.js';
import { ApiError } from './api-error.js';

const WILDCARDS = new Set(['0.0.0.0', '::', '']);
/** A DNS name (letters, digits, hyphens, underscores, dots) or an IP literal. */
const HOST_NAME = /^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$/;

/** `Example.COM.` -> `example.com`, `[::1]` -> `::1`. */
function normalize(name: string): string {
  const lower = name.trim().toLowerCase();
  const unbracketed = lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
  return unbracketed.endsWith('.') ? unbracketed.slice(0, -1) : unbracketed;
}

/** The host of a Host header, without its port: `[::1]:8080` -> `::1`, `Example.com:80` -> `example.com`. */
export function hostOfHeader(header: string): string {
  const h = header.trim();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return normalize(end < 0 ? h : h.slice(0, end + 1));
  }
  const colon = h.indexOf(':');
  return normalize(colon < 0 ? h : h.slice(0, colon));
}

/**
 * Checks an allowed host as given (--allowed-host, `allowedHosts`): a name or an IP literal, no scheme, port or path.
 */
export function checkAllowedHost(name: string): string {
  const n = normalize(name);
  if (!(HOST_NAME.test(n) || isIP(n) !== 0)) {
    throw usageError(
      `--allowed-host ${JSON.stringify(name)}: expected a host name or an IP address (no scheme, port or path)`,
      '--allowed-host',
    );
  }
  return n;
}

/**
 * The Host check of a server listening on `listenHost` (resolved to `resolved`, its addresses when it is a name).
 * Returns the error to answer with, or undefined when the Host is one of the server's.
 */
export function hostChecker(
  listenHost: string,
  resolved: readonly string[],
  allowed: readonly string[],
): (header: string | undefined) => ApiError | undefined {
  const listen = normalize(listenHost);
  const names = new Set(['localhost', listen, ...resolved.map(normalize), ...allowed.map(checkAllowedHost)]);
  const wildcard = WILDCARDS.has(listen);
  const known = (host: string) => names.has(host) || (wildcard && isIP(host) !== 0);
  return (header) => {
    if (header === undefined) return undefined;
    const host = hostOfHeader(header);
    if (known(host)) return undefined;
    const shown = header.replace(/[^\x20-\x7e]/g, '?').slice(0, 100);
    return new ApiError(
      421,
      'unknown_host',
      `this server does not answer to the host ${JSON.stringify(shown)} (a web page may be trying DNS ` +
        `rebinding); to serve under that name, start it with --allowed-host ${hostOfHeader(shown)}`,
    );
  };
}

/** The addresses a listen name resolves to (none for an IP literal); a name that does not resolve is a usage error. */
export async function resolveListenHost(host: string): Promise<string[]> {
  if (isIP(host) !== 0 || WILDCARDS.has(host)) return [];
  try {
    return (await lookup(host, { all: true })).map((a) => a.address);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new VggFaceError(
      'E_USAGE',
      `--host ${JSON.stringify(host)}: not an address of this machine, and it does not resolve as a name (${code})`,
      { input: '--host', cause: err },
    );
  }
}
