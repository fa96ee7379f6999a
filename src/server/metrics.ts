/**
 * The server's Prometheus metrics (prom-client, one registry per server): requests and their latency by route
 * and status, the queue, inference batches, images and faces described, refusals; plus Node.js process metrics
 * (event-loop lag among them, the number that shows a blocked event loop).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ImageResult, JobSpec } from './protocol.js';

export interface ServerMetrics {
  readonly registry: Registry;
  request(route: string, method: string, status: number, seconds: number): void;
  batch(size: number, seconds: number): void;
  described(spec: JobSpec, results: readonly ImageResult[]): void;
  rejected(reason: 'queue_full' | 'timeout'): void;
}

export interface QueueProbe {
  readonly queueDepth: number;
  readonly inflightImages: number;
}

export function createMetrics(queue: () => QueueProbe | undefined): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'vggface_http_requests_total',
    help: 'HTTP requests answered, by route, method and status.',
    labelNames: ['route', 'method', 'status'],
    registers,
  });
  const latency = new Histogram({
    name: 'vggface_http_request_duration_seconds',
    help: 'Time from the request to its answer, by route, method and status.',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  new Gauge({
    name: 'vggface_queue_depth',
    help: 'Requests waiting for an inference worker.',
    registers,
    collect() {
      this.set(queue()?.queueDepth ?? 0);
    },
  });
  new Gauge({
    name: 'vggface_inflight_images',
    help: 'Images held by the inference workers (being decoded, searched for faces or described).',
    registers,
    collect() {
      this.set(queue()?.inflightImages ?? 0);
    },
  });
  const batchSize = new Histogram({
    name: 'vggface_inference_batch_size',
    help: 'Faces per inference call.',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers,
  });
  const batchSeconds = new Histogram({
    name: 'vggface_inference_duration_seconds',
    help: 'Time of one inference call.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const images = new Counter({
    name: 'vggface_images_described_total',
    help: 'Images described (photos or crops), by request kind.',
    labelNames: ['faces'],
    registers,
  });
  const faces = new Counter({ name: 'vggface_faces_described_total', help: 'Faces described.', registers });
  const rejected = new Counter({
    name: 'vggface_rejected_total',
    help: 'Requests refused with 503, by reason.',
    labelNames: ['reason'],
    registers,
  });
  return {
    registry,
    request(route, method, status, seconds) {
      const labels = { route, method, status: String(status) };
      requests.inc(labels);
      latency.observe(labels, seconds);
    },
    batch(size, seconds) {
      batchSize.observe(size);
      batchSeconds.observe(seconds);
    },
    described(spec, results) {
      images.inc({ faces: spec.faces }, results.length);
      faces.inc(results.reduce((s, r) => s + ('json' in r ? r.faces : 1), 0));
    },
    rejected(reason) {
      rejected.inc({ reason });
    },
  };
}
