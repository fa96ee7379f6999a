/**
 * Weight file -> canonical weight set -> validated topology -> ONNX file, in one pass.
 * The weights are read once; the ONNX writer references their arrays, so peak memory is the file's
 * bytes plus whatever layout changes the format forces (none for Caffe).
 */
import { basename } from 'node:path';
import { sha256File } from '../util/hash.js';
import { readWeights } from '../weights/formats.js';
import type { Topology } from '../weights/topology.js';
import type { FormatId, ReadOptions } from '../weights/types.js';
import { buildModel, type Preprocessing } from './builder.js';

export interface ConvertOptions {
  readonly preprocessing: Preprocessing;
  readonly format?: FormatId;
  readonly readOptions?: ReadOptions;
  /** sha256 of the source, when the caller already computed it. */
  readonly sha256?: string;
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
  readonly preprocessing: Preprocessing;
}

export async function convertWeightsToOnnx(source: string, output: string, options: ConvertOptions): Promise<ConversionReport> {
  const sha256 = options.sha256 ?? (await sha256File(source));
  const { weights, topology, format } = await readWeights(source, options.format, options.readOptions);
  buildModel(weights, topology, { preprocessing: options.preprocessing, sourceSha256: sha256, sourceName: basename(source) }).writeFileAtomic(output);
  return {
    source,
    output,
    format,
    layout: weights.layout,
    sourceDtype: weights.sourceDtype,
    inputChannelOrder: weights.inputChannelOrder,
    topology,
    sha256,
    preprocessing: options.preprocessing,
  };
}
