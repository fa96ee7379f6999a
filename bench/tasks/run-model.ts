/** Peak memory of using a model: VggFace.load on the .onnx, then describing images at batch 8. */
import { VggFace } from '../../src/vggface.js';
import { finishTask, taskArgs } from '../harness.js';

const { model: modelPath, images } = taskArgs<{ model: string; images: number }>();
const S = 224 * 224 * 3;
const inputs = Array.from({ length: images }, (_, i) => {
  const data = new Uint8Array(S);
  for (let k = 0; k < S; k++) data[k] = (k * 31 + i * 17) & 255;
  return { data, width: 224, height: 224, channels: 3 as const };
});
const t0 = performance.now();
const model = await VggFace.load({ weights: modelPath });
const loadMs = performance.now() - t0;
await model.describe(inputs, { batchSize: 8 });
await model.close();
finishTask({ loadMs });
