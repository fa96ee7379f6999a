/**
 * Reads a weight file into the canonical weight set (no conversion) and reports the time and this process's peak RSS.
 */
import { readWeights } from '../../src/weights/formats.js';
import { finishTask, taskArgs } from '../harness.js';

const { path } = taskArgs<{ path: string }>();
const t0 = performance.now();
const { weights, topology, format } = await readWeights(path);
const ms = performance.now() - t0;
const weightBytes = weights.layers.reduce((a, l) => a + l.weight.data.byteLength + l.bias.data.byteLength, 0);
finishTask({ format, ms, parameters: topology.parameters, weightBytes });
