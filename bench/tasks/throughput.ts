/**
 * Images/s of the library (describe on decoded 224x224 RGB) beside a raw onnxruntime-node session on the same
 * ONNX file, same options, same process, rounds interleaved so machine noise hits both alike.
 */
import '../../src/runtime/no-telemetry.js'; // before onnxruntime-node: its telemetry opt-out
import * as ort from 'onnxruntime-node';
import { availableParallelism } from 'node:os';
import { VggFace } from '../../src/vggface.js';
import { finishTask, median, taskArgs } from '../harness.js';

const {
  model: modelPath,
  batches,
  rounds,
  imagesPerRound,
} = taskArgs<{ model: string; batches: number[]; rounds: number; imagesPerRound: number }>();
const model = await VggFace.load({ weights: modelPath });
const raw = await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: availableParallelism(),
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  executionProviders: ['cpu'],
  // The same kernels the library chose (exact ones only for a full-range int8 model on a CPU without VNNI).
  ...(model.exactInt8Kernels ? { extra: { session: { x64quantprecision: '1' } } } : {}),
});
const S = 224 * 224 * 3;
const images = Array.from({ length: imagesPerRound }, (_, i) => {
  const data = new Uint8Array(S);
  for (let k = 0; k < S; k++) data[k] = (k * 31 + i * 17) & 255;
  return { data, width: 224, height: 224, channels: 3 as const };
});

async function ours(batch: number): Promise<number> {
  const t = performance.now();
  await model.describe(images, { batchSize: batch });
  return (images.length / (performance.now() - t)) * 1000;
}
async function rawRun(batch: number): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < images.length; i += batch) {
    const n = Math.min(batch, images.length - i);
    const px = new Uint8Array(n * S);
    for (let k = 0; k < n; k++) px.set(images[i + k].data, k * S);
    await raw.run({ image: new ort.Tensor('uint8', px, [n, 224, 224, 3]) }, ['descriptor']);
  }
  return (images.length / (performance.now() - t)) * 1000;
}

const result: Record<
  string,
  { ours: number; raw: number; ratio: number; oursRounds: number[]; rawRounds: number[] } | boolean
> = {
  exactKernels: model.exactInt8Kernels,
};
for (const batch of batches) {
  await ours(batch); // warm-up both
  await rawRun(batch);
  const o: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      o.push(await ours(batch));
      r.push(await rawRun(batch));
    } else {
      r.push(await rawRun(batch));
      o.push(await ours(batch));
    }
  }
  result[`batch${batch}`] = {
    ours: median(o),
    raw: median(r),
    ratio: median(o) / median(r),
    oursRounds: o,
    rawRounds: r,
  };
}
await model.close();
await raw.release();
finishTask(result);
