/**
 * End-to-end images/s of `describe` over JPEG photos of mixed sizes (decode + resize on the libuv pool, pipelined
 * with inference), beside the model-only rate on the same number of already-decoded 224x224 images, same process,
 * rounds interleaved.
 */
import { VggFace } from '../../src/vggface.js';
import { finishTask, median, taskArgs } from '../harness.js';

const {
  model: modelPath,
  photos,
  rounds,
  batch,
} = taskArgs<{ model: string; photos: string[]; rounds: number; batch: number }>();
const model = await VggFace.load({ weights: modelPath });
const S = 224 * 224 * 3;
const decoded = photos.map((_, i) => {
  const data = new Uint8Array(S);
  for (let k = 0; k < S; k++) data[k] = (k * 31 + i * 17) & 255;
  return { data, width: 224, height: 224, channels: 3 as const };
});

async function rate(inputs: readonly (string | (typeof decoded)[number])[]): Promise<number> {
  const t = performance.now();
  let n = 0;
  for await (const r of model.describeEach(inputs, { batchSize: batch })) {
    if (r.error) throw r.error;
    n++;
  }
  return (n / (performance.now() - t)) * 1000;
}

await rate(photos.slice(0, batch)); // warm-up
const e2e: number[] = [];
const modelOnly: number[] = [];
for (let i = 0; i < rounds; i++) {
  if (i % 2 === 0) {
    e2e.push(await rate(photos));
    modelOnly.push(await rate(decoded));
  } else {
    modelOnly.push(await rate(decoded));
    e2e.push(await rate(photos));
  }
}
await model.close();
finishTask({
  e2e: median(e2e),
  modelOnly: median(modelOnly),
  ratio: median(e2e) / median(modelOnly),
  e2eRounds: e2e,
  modelOnlyRounds: modelOnly,
});
