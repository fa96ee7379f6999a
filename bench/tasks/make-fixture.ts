/** Writes random weights of the real VGG-Face dimensions with one of the fixture writers (test/fixtures/writers.ts). */
import { randomWeights } from '../../test/fixtures/random-weights.js';
import { FIXTURE_WRITERS } from '../../test/fixtures/writers.js';
import { finishTask, taskArgs } from '../harness.js';

const { writer, path } = taskArgs<{ writer: string; path: string }>();
const w = FIXTURE_WRITERS.find((x) => x.name === writer);
if (!w) throw new Error(`no fixture writer ${writer}; have ${FIXTURE_WRITERS.map((x) => x.name).join(', ')}`);
const t0 = performance.now();
await w.write(path, randomWeights());
finishTask({ path, ms: performance.now() - t0 });
