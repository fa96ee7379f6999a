/**
 * Conversion at any precision. fp32 and fp16 are one pass (in a worker thread). int8 takes three steps, arranged
 * so the fp32 weights and an fp32 ONNX Runtime session are never in memory together, and the weights are read once:
 *   1. a worker reads the weights, writes a temporary fp32 calibration model (every conv activation as an output),
 *      quantizes the weights to int8, hands those over (moved, not copied) and exits, freeing the fp32 weights;
 *   2. ONNX Runtime runs the calibration model on the calibration images; the histograms give the ranges;
 *   3. the int8 model is written from the quantized weights and the ranges.
 */
import { rmSync } from 'node:fs';
import { checkOutputPath } from '../util/files.js';
import { sha256File } from '../util/hash.js';
import { builtinCalibrationSet, type CalibrationSet } from './calibration-set.js';
import { openEngine } from '../runtime/onnxruntime.js';
import {
  collectStatistics,
  DEFAULT_CALIBRATION_METHOD,
  PERCENTILE,
  rangesFor,
  type CalibrationMethod,
} from './calibrate.js';
import { writeQuantizedModel, type ConversionReport, type ConvertOptions } from './convert.js';
import { convertInWorker } from './convert-worker.js';

export interface ConvertModelOptions extends Omit<ConvertOptions, 'calibration' | 'convOutputs'> {
  /** int8: the images to calibrate on (default: the built-in synthetic set). */
  readonly calibrationSet?: CalibrationSet;
  /** int8: how histograms become ranges (default DEFAULT_CALIBRATION_METHOD). */
  readonly calibrationMethod?: CalibrationMethod;
  /** ONNX Runtime threads for the calibration run. */
  readonly threads?: number;
  /** int8: called after each calibration batch. */
  readonly onCalibrationProgress?: (done: number, total: number) => void;
}

/** How the method is recorded in the metadata. */
export function methodLabel(method: CalibrationMethod): string {
  return method === 'percentile' ? `percentile ${PERCENTILE}` : method;
}

export async function convertModel(
  source: string,
  output: string,
  options: ConvertModelOptions,
): Promise<ConversionReport> {
  // Before anything is read or written: an int8 conversion writes its calibration model first.
  checkOutputPath(output, [source]);
  const base: ConvertOptions = {
    preprocessing: options.preprocessing,
    format: options.format,
    readOptions: options.readOptions,
    sha256: options.sha256 ?? (await sha256File(source)),
    weightLimit: options.weightLimit,
  };
  const precision = options.precision ?? 'fp32';
  if (precision !== 'int8') return (await convertInWorker(source, output, { ...base, precision })).report;

  const set = options.calibrationSet ?? (await builtinCalibrationSet());
  const method = options.calibrationMethod ?? DEFAULT_CALIBRATION_METHOD;
  const calibrationModel = `${output}.tmp-calibration-${process.pid}-${Date.now().toString(36)}`;
  let stats;
  let prepared;
  try {
    prepared = await convertInWorker(source, calibrationModel, {
      ...base,
      precision: 'fp32',
      convOutputs: true,
      quantizeWeights: true,
    });
    const engine = await openEngine(calibrationModel, { threads: options.threads });
    try {
      stats = await collectStatistics(engine, set.images(), {
        onImage: (done) => options.onCalibrationProgress?.(done, set.count),
      });
    } finally {
      await engine.close();
    }
  } finally {
    rmSync(calibrationModel, { force: true });
  }
  const { report, quantized } = prepared;
  const calibration = {
    ranges: rangesFor(stats, method),
    method: methodLabel(method),
    sha256: set.sha256,
    source: set.source,
    images: stats.images,
  };
  return writeQuantizedModel(quantized!, report.topology, output, {
    preprocessing: base.preprocessing,
    source,
    sha256: base.sha256!,
    format: report.format,
    calibration,
  });
}
