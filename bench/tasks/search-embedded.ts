/**
 * Exact search latency of the embedded gallery's in-memory index (what SqliteStore.search uses) on synthetic
 * descriptors.
 */
import { DescriptorIndex } from '../../src/gallery/descriptor-index.js';
import type { Precision } from '../../src/gallery/scorer.js';
import { finishTask, median, taskArgs } from '../harness.js';
import { FACES_PER_IDENTITY, syntheticFace, syntheticQuery } from '../synthetic.js';

const { size, precision, dim, queries } = taskArgs<{
  size: number;
  precision: Precision;
  dim: number;
  queries: number;
}>();
const index = new DescriptorIndex(dim, precision);
const t0 = performance.now();
const v = new Float32Array(dim);
for (let i = 0; i < size; i++) {
  syntheticFace(i, v);
  index.append({ id: i, identity: `p${Math.floor(i / FACES_PER_IDENTITY)}`, source: '' }, index.encode(v));
}
const buildMs = performance.now() - t0;
const identities = Math.ceil(size / FACES_PER_IDENTITY);
await index.search(syntheticQuery(0, dim), 10, 'cosine'); // warm-up: opens the ONNX Runtime session
const times: number[] = [];
let correct = 0;
for (let q = 0; q < queries; q++) {
  const target = Math.floor(((q + 0.5) / queries) * identities);
  const query = syntheticQuery(target, dim);
  const t = performance.now();
  const res = await index.search(query, 10, 'cosine');
  times.push(performance.now() - t);
  if (res[0]?.identity === `p${target}`) correct++;
}
await index.close();
times.sort((a, b) => a - b);
finishTask({
  buildMs,
  bytes: index.bytes,
  medianMs: median(times),
  p90Ms: times[Math.floor(times.length * 0.9)],
  minMs: times[0],
  correct,
  queries,
});
