/** Times VggFace.load on a weight file: cold (conversion) or warm (cache hit), depending on the cache. */
import { VggFace } from '../../src/vggface.js';
import { finishTask, taskArgs } from '../harness.js';

const { weights, cacheDir } = taskArgs<{ weights: string; cacheDir: string }>();
const t0 = performance.now();
const model = await VggFace.load({ weights, cacheDir });
const ms = performance.now() - t0;
const origin = model.origin;
await model.close();
finishTask({ ms, origin, modelPath: model.modelPath });
