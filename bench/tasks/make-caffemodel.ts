import { randomWeights } from '../../test/fixtures/random-weights.js';
import { writeCaffeModel } from '../../test/fixtures/caffe-writer.js';
import { finishTask, taskArgs } from '../harness.js';

const { path } = taskArgs<{ path: string }>();
writeCaffeModel(path, randomWeights(), { version: 1 });
finishTask({ path });
