/**
 * Load on a running `vggface serve` (loopback): autocannon with N connections posting one photo per request
 * (multipart, POST /v1/describe, the photos in turn) for a fixed time, while /healthz is timed every 250 ms
 * on a connection of its own. Returns autocannon's counts and latencies and the /healthz latencies.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import autocannon from 'autocannon';
import { finishTask, median, taskArgs } from '../harness.js';

const { url, photos, connections, seconds } = taskArgs<{
  url: string;
  photos: string[];
  connections: number;
  seconds: number;
}>();

const BOUNDARY = 'vggface-bench-boundary';
const bodies = photos.map((p) =>
  Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="${basename(p)}"\r\n` +
        'Content-Type: image/jpeg\r\n\r\n',
    ),
    readFileSync(p),
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]),
);
let next = 0;

let probing = true;
const health: number[] = [];
const probe = (async () => {
  while (probing) {
    const t = performance.now();
    const res = await fetch(`${url}/healthz`);
    await res.text();
    if (probing) health.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 250));
  }
})();

const result = await autocannon({
  url: `${url}/v1/describe`,
  connections,
  duration: seconds,
  timeout: 120,
  requests: [
    {
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }),
    },
  ],
});
probing = false;
await probe;

const percentile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
finishTask({
  seconds: result.duration,
  ok: result['2xx'],
  statusCodes: result.statusCodeStats ?? {},
  errors: result.errors,
  timeouts: result.timeouts,
  latency: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  health: { probes: health.length, p50: median(health), p99: percentile(health, 0.99), max: Math.max(...health) },
});
