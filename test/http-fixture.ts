/**
 * A local HTTP server for download tests: serves one body with ETag, Range and If-Range, and can cut a response short.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedFile {
  body: Buffer | (() => Buffer);
  etag: string;
  /**
   * Send only this many bytes of the next response, then hold the connection until `cut()` is called
   * (the test calls it once the client reports the bytes), and drop it.
   */
  cutAfter?: number;
  status?: number;
}

export interface FixtureServer {
  readonly url: string;
  readonly requests: IncomingHttpHeaders[];
  readonly file: ServedFile;
  /** Drops the connection held by `cutAfter`. */
  cut(): void;
  close(): Promise<void>;
}

export async function serveFile(file: ServedFile, path = '/vgg_face_caffe.tar.gz'): Promise<FixtureServer> {
  const requests: IncomingHttpHeaders[] = [];
  let held: (() => void) | undefined;
  const server: Server = createServer((req, res) => {
    requests.push(req.headers);
    if (req.url !== path) {
      res.writeHead(404).end('not found');
      return;
    }
    if (file.status) {
      res.writeHead(file.status).end();
      return;
    }
    const body = typeof file.body === 'function' ? file.body() : file.body;
    let start = 0;
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && (!ifRange || ifRange === file.etag)) {
      start = Number(range[1]);
      status = 206;
    }
    const headers: Record<string, string | number> = {
      etag: file.etag,
      'content-length': body.length - start,
      'accept-ranges': 'bytes',
    };
    if (status === 206) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(status, headers);
    const slice = body.subarray(start);
    if (file.cutAfter !== undefined) {
      const n = file.cutAfter;
      file.cutAfter = undefined;
      res.write(slice.subarray(0, n));
      held = () => res.socket?.destroy();
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    file,
    cut: () => {
      // A moment for the client to hand the bytes it has to the file system before the connection drops.
      setTimeout(() => held?.(), 100);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
