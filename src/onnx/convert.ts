/**
 * Weight file -> canonical weight set -> validated topology -> ONNX file, in one pass.
 * The weights are read once; the ONNX writer references their arrays, so peak memory is the file's
 * bytes plus whatever layout changes the format forces (none for Caffe), plus the fp16 or int8 copy when the
 * model stores another precision (half or a quarter of the weights).
 */
import { basename } from 'node:path';
import { VggFaceError } from '../errors.js';
import { checkOutputPath } from '../util/files.js';
import { sha256File } from '../util/hash.js';
import { readWeights } from '../weights/formats.js';
import type { Topology } from '../weights/topology.js';
import type { FormatId, ReadOptions } from '../weights/types.js';
import { buildModel, type WeightSetInfo } from './builder.js';
import type { Precision, Preprocessing } from './contract.js';
import { encodeModel } from './proto.js';
import { buildQuantizedSpec, quantizeWeights, type Calibration, type QuantizedWeights } from './quantize.js';

export interface ConvertOptions {
  readonly preprocessing: Preprocessing;
  readonly format?: FormatId;
  readonly readOptions?: ReadOptions;
  /** sha256 of the source, when the caller already computed it. */
  readonly sha256?: string;
  /** fp32 (default), fp16, or int8 with `calibration` (convertModel in convert-model.ts calibrates first). */
  readonly precision?: Precision;
  /** int8: the calibrated activation ranges and where they came from. */
  readonly calibration?: Calibration;
  /** fp32 only: also output every conv activation (the model calibration runs). */
  readonly convOutputs?: boolean;
  /** Also return the weights quantized to int8, for an int8 model built after calibration. */
  readonly quantizeWeights?: boolean;
  /** int8: the largest |weight| (default WEIGHT_LIMIT; 127 builds builder 1's full-range model, to measure it). */
  readonly weightLimit?: number;
}

export interface ConversionReport {
  readonly source: string;
  readonly output: string;
  readonly format: FormatId;
  readonly layout: string;
  readonly sourceDtype: string;
  readonly inputChannelOrder: string;
  readonly topology: Topology;
  readonly sha256: string;
  /** The network's identity (sha256 of its canonical weights, the same for every layout), recorded in the metadata. */
  readonly identity?: string;
  readonly preprocessing: Preprocessing;
  readonly precision: Precision;
  /** int8 only: method, set and hash of the calibration (the ranges are in the model's metadata). */
  readonly calibration?: { method: string; source: string; sha256: string; images: number };
}

export interface ConversionOutcome {
  readonly report: ConversionReport;
  /** With `quantizeWeights`: the int8 layers (a quarter of the weights' size), for {@link writeQuantizedModel}. */
  readonly quantized?: QuantizedWeights;
}

export async function convertWeightsToOnnx(
  source: string,
  output: string,
  options: ConvertOptions,
): Promise<ConversionReport> {
  return (await convertAndQuantize(source, output, options)).report;
}

export async function convertAndQuantize(
  source: string,
  output: string,
  options: ConvertOptions,
): Promise<ConversionOutcome> {
  const precision = options.precision ?? 'fp32';
  if (precision === 'int8' && !options.calibration)
    throw new VggFaceError('E_INTERNAL', 'int8 conversion without calibration ranges');
  checkOutputPath(output, [source]);
  const sha256 = options.sha256 ?? (await sha256File(source));
  const { weights, topology, format } = await readWeights(source, options.format, options.readOptions);
  const build = { preprocessing: options.preprocessing, sourceSha256: sha256, sourceName: basename(source) };
  const quantized =
    precision === 'int8' || options.quantizeWeights ? quantizeWeights(weights, options.weightLimit) : undefined;
  const model =
    precision === 'int8'
      ? encodeModel(buildQuantizedSpec(quantized!, topology, { ...build, calibration: options.calibration! }))
      : buildModel(weights, topology, { ...build, precision, convOutputs: options.convOutputs });
  model.writeFileAtomic(output);
  const report = conversionReport(
    source,
    output,
    format,
    weights,
    topology,
    sha256,
    options.preprocessing,
    precision,
    options.calibration,
  );
  return options.quantizeWeights ? { report, quantized } : { report };
}

/** Writes the int8 model from weights quantized earlier and the calibrated ranges (no weight file read). */
export function writeQuantizedModel(
  quantized: QuantizedWeights,
  topology: Topology,
  output: string,
  options: { preprocessing: Preprocessing; source: string; sha256: string; format: FormatId; calibration: Calibration },
): ConversionReport {
  const build = {
    preprocessing: options.preprocessing,
    sourceSha256: options.sha256,
    sourceName: basename(options.source),
  };
  encodeModel(buildQuantizedSpec(quantized, topology, { ...build, calibration: options.calibration })).writeFileAtomic(
    output,
  );
  return conversionReport(
    options.source,
    output,
    options.format,
    quantized.info,
    topology,
    options.sha256,
    options.preprocessing,
    'int8',
    options.calibration,
  );
}

function conversionReport(
  source: string,
  output: string,
  format: FormatId,
  weights: WeightSetInfo,
  topology: Topology,
  sha256: string,
  preprocessing: Preprocessing,
  precision: Precision,
  c: Calibration | undefined,
): ConversionReport {
  return {
    source,
    output,
    format,
    layout: weights.layout,
    sourceDtype: weights.sourceDtype,
    inputChannelOrder: weights.inputChannelOrder,
    topology,
    sha256,
    ...(weights.identity ? { identity: weights.identity } : {}),
    preprocessing,
    precision,
    ...(precision === 'int8' && c
      ? { calibration: { method: c.method, source: c.source, sha256: c.sha256, images: c.images } }
      : {}),
  };
}
