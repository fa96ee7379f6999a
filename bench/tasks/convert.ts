/** Converts a weight file at a precision (the library's convertModel, int8 calibrating on the built-in set;
 * `weightLimit: 127` builds builder 1's full-range int8 model, to measure what it did). */
import { statSync } from 'node:fs';
import { convertModel } from '../../src/onnx/convert-model.js';
import type { Precision } from '../../src/onnx/contract.js';
import { finishTask, taskArgs } from '../harness.js';

const { source, output, precision, weightLimit } = taskArgs<{
  source: string;
  output: string;
  precision: Precision;
  weightLimit?: number;
}>();
const t0 = performance.now();
const report = await convertModel(source, output, { preprocessing: 'caffe', precision, weightLimit });
finishTask({ ms: performance.now() - t0, bytes: statSync(output).size, calibration: report.calibration });
