/**
 * The int8 model: static quantization written by the builder, in ONNX's QDQ form
 * (QuantizeLinear/DequantizeLinear around every Conv and Gemm), which ONNX Runtime fuses into integer kernels.
 *
 * - Weights: int8, symmetric (zero point 0, range -64..64: see WEIGHT_LIMIT), one scale per output channel, for
 *   all 13 conv and 3 fc layers. Biases: int32 with scale = input scale x weight scale, as the kernels expect.
 * - Activations: uint8, one scale per tensor. After ReLU the zero point is 0 (so the quantizer also does the ReLU)
 *   and the scale is the calibrated range / 255. The preprocessed input gets its exact range from the
 *   preprocessing (0-255 minus the mean, or 0-1), so it needs no calibration.
 * - Max-pooling and flattening run on the uint8 tensors (max commutes with a monotone quantizer).
 * - fc6, fc7_pre, fc7 and fc8 are produced in float32 (the outputs are float) and fc6/fc7 are quantized again
 *   for the next layer; the descriptor is normalised from float fc7 as in the fp32 model.
 *
 * Memory: `quantizeWeights` makes the int8 arrays layer by layer from the fp32 weights (a view of the file's
 * bytes), a quarter of their size, and the streaming writer references them; the fp32 weights are never copied,
 * and can be freed before the model is built (the int8 conversion calibrates in between).
 */
import { NON_SATURATING_WEIGHT_LIMIT } from '../runtime/cpu.js';
import { BLOCKS, type Topology } from '../weights/topology.js';
import { VGG_FACE_MEAN_RGB, type LayerName, type Tensor, type WeightSet } from '../weights/types.js';
import {
  assembleSpec,
  bytesOf,
  CONV_ATTRIBUTES,
  descriptorPart,
  graphInterface,
  graphWeight,
  modelMetadata,
  POOL_ATTRIBUTES,
  preprocessingPart,
  type BuildOptions,
  type WeightSetInfo,
} from './builder.js';
import { META, type Preprocessing } from './contract.js';
import { DataType, type InitializerSpec, type ModelSpec } from './proto.js';

/** The activations whose ranges are calibrated: every conv layer's and fc6/fc7's output after ReLU. */
export function calibratedTensors(): string[] {
  return [...BLOCKS.flat(), 'fc6', 'fc7'];
}

/** What the calibration found and how: recorded in the model's metadata. */
export interface Calibration {
  /** Upper end of each calibrated activation's range (the lower end is 0, after ReLU). */
  readonly ranges: Readonly<Record<string, number>>;
  readonly method: string;
  /** sha256 over the calibration images' pixels as the model saw them. */
  readonly sha256: string;
  readonly source: string;
  readonly images: number;
}

export interface QuantizeOptions extends Omit<BuildOptions, 'precision' | 'convOutputs'> {
  readonly calibration: Calibration;
}

/**
 * The largest weight magnitude: 64, not 127. ONNX Runtime's x86 kernels without VNNI (AVX2, AVX-512 without VNNI)
 * multiply uint8 activations by int8 weights with `vpmaddubsw`, which adds two products into a saturating int16:
 * 255 x 127 x 2 = 64,770 clips at 32,767, while 255 x 64 x 2 = 32,640 cannot. With VNNI or AMX the sums are int32
 * either way. So a model with weights in -64..64 computes exactly the same integers on every CPU; it is one model
 * for every machine it is copied to. Measured (full-size network, random weights, the 64 photos of
 * ../shared/data/faces, cosine to fp32 min / median; AVX2 Zen 3 without VNNI):
 *   -127..127, default kernels: 0.98946 / 0.99619 (saturated), 1.92x fp32;
 *   -127..127, exact U8U8 kernels (session.x64quantprecision): 0.99957 / 0.99974, 1.36x fp32;
 *   -64..64, either kernels (identical results): 0.99931 / 0.99952, about 2x fp32;
 *   -63..63 (ONNX Runtime's reduce_range): 0.99929 / 0.99949.
 * With VNNI the kernels (and so the speed) are the same for both ranges: 3.56x fp32 recorded on a Zen 5.
 */
export const WEIGHT_LIMIT = NON_SATURATING_WEIGHT_LIMIT;

export const QUANT_SCHEME =
  `QDQ (QuantizeLinear/DequantizeLinear around Conv and Gemm); weights int8 symmetric per output channel in ` +
  `-${WEIGHT_LIMIT}..${WEIGHT_LIMIT} (no int16 saturation in x86 kernels without VNNI); ` +
  'activations uint8 per tensor (zero point 0 after ReLU); biases int32';

export interface QuantizedTensor {
  readonly data: Int8Array;
  /** One scale per output channel (axis 0). */
  readonly scales: Float32Array;
}

/** Symmetric per-output-channel int8: q = round(w / s), s = max|w| / limit over the channel. */
export function quantizePerChannel(t: Tensor, limit = WEIGHT_LIMIT): QuantizedTensor {
  const channels = t.shape[0];
  const per = t.data.length / channels;
  const data = new Int8Array(t.data.length);
  const scales = new Float32Array(channels);
  for (let o = 0; o < channels; o++) {
    const w = t.data.subarray(o * per, (o + 1) * per);
    let max = 0;
    for (let i = 0; i < per; i++) max = Math.max(max, Math.abs(w[i]));
    const s = max > 0 ? max / limit : 1; // an all-zero channel stays zero with any scale
    scales[o] = s;
    const q = data.subarray(o * per, (o + 1) * per);
    for (let i = 0; i < per; i++) q[i] = Math.round(w[i] / s);
  }
  return { data, scales };
}

/** int32 bias for an integer kernel: b / (input scale x weight scale of the channel). */
export function quantizeBias(
  bias: Float32Array,
  inputScale: number,
  weightScales: Float32Array,
): { data: Int32Array; scales: Float32Array } {
  const data = new Int32Array(bias.length);
  const scales = new Float32Array(bias.length);
  for (let o = 0; o < bias.length; o++) {
    scales[o] = inputScale * weightScales[o];
    data[o] = Math.max(-2147483647, Math.min(2147483647, Math.round(bias[o] / scales[o])));
  }
  return { data, scales };
}

/** uint8 quantization of the preprocessed input: its exact range, asymmetric, 0 exactly representable. */
export function inputQuantization(
  preprocessing: Preprocessing,
  mean: readonly number[],
): { scale: number; zeroPoint: number } {
  if (preprocessing === 'deepface') return { scale: 1 / 255, zeroPoint: 0 };
  const lo = -Math.max(...mean);
  const hi = 255 - Math.min(...mean);
  const scale = (hi - lo) / 255;
  return { scale, zeroPoint: Math.round(-lo / scale) };
}

/** uint8 scale of a post-ReLU activation whose calibrated range is [0, max]. */
export function activationScale(name: string, max: number): number {
  if (!(max > 0) || !Number.isFinite(max)) {
    // A layer that never fired on the calibration images: any positive scale is exact for zeros.
    if (max === 0) return 1 / 255;
    throw new Error(`internal: calibration range of ${name} is ${max}`);
  }
  return max / 255;
}

/** A layer with its weight quantized and its bias still float (its int32 scale depends on the input's range). */
export interface QuantizedLayer extends QuantizedTensor {
  readonly name: LayerName;
  /** The weight's shape as the graph uses it (conv OIHW, fc (out, in)). */
  readonly shape: readonly number[];
  readonly bias: Float32Array;
}

/** The quantized layers of a weight set and what the metadata needs from it: no fp32 weights. */
export interface QuantizedWeights {
  readonly info: WeightSetInfo;
  /** The largest |q| the weights may take (WEIGHT_LIMIT; 127 only to measure the full-range model). */
  readonly limit: number;
  readonly layers: readonly QuantizedLayer[];
}

/** Quantizes every layer (conv1_1 in the graph's channel order); biases are copied (small). */
export function quantizeWeights(weights: WeightSet, limit = WEIGHT_LIMIT): QuantizedWeights {
  const { format, layout, sourceDtype, inputChannelOrder, mean, identity } = weights;
  return {
    info: {
      format,
      layout,
      sourceDtype,
      inputChannelOrder,
      ...(mean ? { mean } : {}),
      ...(identity ? { identity } : {}),
    },
    limit,
    layers: weights.layers.map((layer) => {
      const w = graphWeight(weights, layer);
      return {
        name: layer.name,
        shape: [...w.shape],
        ...quantizePerChannel(w, limit),
        bias: Float32Array.from(layer.bias.data),
      };
    }),
  };
}

/** The arrays to list when a QuantizedWeights is posted between threads, so its weights move instead of copying. */
export function transferList(q: QuantizedWeights): ArrayBuffer[] {
  return q.layers.flatMap((l) => [l.data.buffer, l.scales.buffer, l.bias.buffer] as ArrayBuffer[]);
}

/** Builds the int8 model spec; its initializers reference the quantized arrays (no copies). */
export function buildQuantizedSpec(weights: QuantizedWeights, topology: Topology, options: QuantizeOptions): ModelSpec {
  const { ranges } = options.calibration;
  for (const t of calibratedTensors()) {
    if (typeof ranges[t] !== 'number') throw new Error(`internal: no calibration range for ${t}`);
  }
  const mean = weights.info.mean ?? VGG_FACE_MEAN_RGB;
  const { nodes, inits } = preprocessingPart(options.preprocessing, mean);
  const scalar = (name: string, value: number) =>
    inits.push({ name, dataType: DataType.FLOAT, dims: [], data: bytesOf(Float32Array.of(value)) });
  const zeroPoint = (name: string, value: number) =>
    inits.push({ name, dataType: DataType.UINT8, dims: [], data: Uint8Array.of(value) });
  const quantize = (input: string, output: string, scale: number, zp: number) => {
    scalar(`${output}.scale`, scale);
    zeroPoint(`${output}.zero_point`, zp);
    nodes.push({ op: 'QuantizeLinear', inputs: [input, `${output}.scale`, `${output}.zero_point`], outputs: [output] });
  };
  /** Quantized activation: its tensor name and how to read it back. */
  interface Q {
    readonly name: string;
    readonly scale: number;
    readonly params: readonly [string, string];
  }
  let dqCount = 0;
  const dequantize = (x: Q): string => {
    // One DequantizeLinear per consumer, as ONNX Runtime's QDQ fusion wants.
    const out = `${x.name}_dq${dqCount++}`;
    nodes.push({ op: 'DequantizeLinear', inputs: [x.name, ...x.params], outputs: [out] });
    return out;
  };
  const quantized = (name: string, scale: number): Q => ({
    name,
    scale,
    params: [`${name}.scale`, `${name}.zero_point`],
  });

  /** int8 weight and int32 bias of a layer, each behind a per-channel DequantizeLinear. */
  const layerParams = (layer: QuantizedLayer, inputScale: number): [string, string] => {
    const b = quantizeBias(layer.bias, inputScale, layer.scales);
    const channels = layer.shape[0];
    const name = layer.name;
    const add = (spec: InitializerSpec) => inits.push(spec);
    add({ name: `${name}.weight_q`, dataType: DataType.INT8, dims: layer.shape, data: bytesOf(layer.data) });
    add({ name: `${name}.weight_scale`, dataType: DataType.FLOAT, dims: [channels], data: bytesOf(layer.scales) });
    add({
      name: `${name}.weight_zero_point`,
      dataType: DataType.INT8,
      dims: [channels],
      data: new Uint8Array(channels),
    });
    add({ name: `${name}.bias_q`, dataType: DataType.INT32, dims: [channels], data: bytesOf(b.data) });
    add({ name: `${name}.bias_scale`, dataType: DataType.FLOAT, dims: [channels], data: bytesOf(b.scales) });
    add({
      name: `${name}.bias_zero_point`,
      dataType: DataType.INT32,
      dims: [channels],
      data: new Uint8Array(channels * 4),
    });
    const axis0 = { axis: { kind: 'int', value: 0 } } as const;
    nodes.push({
      op: 'DequantizeLinear',
      inputs: [`${name}.weight_q`, `${name}.weight_scale`, `${name}.weight_zero_point`],
      outputs: [`${name}.weight`],
      attributes: axis0,
    });
    nodes.push({
      op: 'DequantizeLinear',
      inputs: [`${name}.bias_q`, `${name}.bias_scale`, `${name}.bias_zero_point`],
      outputs: [`${name}.bias`],
      attributes: axis0,
    });
    return [`${name}.weight`, `${name}.bias`];
  };

  const input = inputQuantization(options.preprocessing, mean);
  quantize('data', 'data_q', input.scale, input.zeroPoint);
  let x: Q = quantized('data_q', input.scale);

  const byName = new Map<string, QuantizedLayer>(weights.layers.map((l) => [l.name, l]));
  BLOCKS.forEach((block, b) => {
    for (const name of block) {
      const layer = byName.get(name)!;
      const xdq = dequantize(x);
      const [w, bias] = layerParams(layer, x.scale);
      nodes.push({ op: 'Conv', name, inputs: [xdq, w, bias], outputs: [`${name}_pre`], attributes: CONV_ATTRIBUTES });
      nodes.push({ op: 'Relu', inputs: [`${name}_pre`], outputs: [name] });
      const scale = activationScale(name, ranges[name]);
      quantize(name, `${name}_q`, scale, 0);
      x = quantized(`${name}_q`, scale);
    }
    const pool = `pool${b + 1}_q`;
    nodes.push({ op: 'MaxPool', name: `pool${b + 1}`, inputs: [x.name], outputs: [pool], attributes: POOL_ATTRIBUTES });
    x = { ...x, name: pool };
  });
  nodes.push({
    op: 'Flatten',
    inputs: [x.name],
    outputs: ['pool5_flat_q'],
    attributes: { axis: { kind: 'int', value: 1 } },
  });
  x = { ...x, name: 'pool5_flat_q' };

  const fc = (name: string, input: Q, output: string) => {
    const layer = byName.get(name)!;
    const xdq = dequantize(input);
    const [w, bias] = layerParams(layer, input.scale);
    nodes.push({
      op: 'Gemm',
      name,
      inputs: [xdq, w, bias],
      outputs: [output],
      attributes: { transB: { kind: 'int', value: 1 } },
    });
  };
  fc('fc6', x, 'fc6_pre');
  nodes.push({ op: 'Relu', inputs: ['fc6_pre'], outputs: ['fc6'] });
  const s6 = activationScale('fc6', ranges.fc6);
  quantize('fc6', 'fc6_q', s6, 0);
  fc('fc7', quantized('fc6_q', s6), 'fc7_pre');
  nodes.push({ op: 'Relu', inputs: ['fc7_pre'], outputs: ['fc7'] });
  const s7 = activationScale('fc7', ranges.fc7);
  quantize('fc7', 'fc7_q', s7, 0);
  fc('fc8', quantized('fc7_q', s7), 'fc8');
  const tail = descriptorPart();
  nodes.push(...tail.nodes);
  inits.push(...tail.inits);

  const c = options.calibration;
  const metadata = modelMetadata(weights.info, topology, options, {
    [META.precision]: 'int8',
    [META.quantScheme]:
      weights.limit === WEIGHT_LIMIT
        ? QUANT_SCHEME
        : QUANT_SCHEME.replaceAll(String(WEIGHT_LIMIT), String(weights.limit)),
    [META.weightLimit]: String(weights.limit),
    [META.calibrationMethod]: c.method,
    [META.calibrationSha256]: c.sha256,
    [META.calibrationSource]: c.source,
    [META.calibrationImages]: String(c.images),
    [META.activationRanges]: JSON.stringify(
      Object.fromEntries(calibratedTensors().map((t) => [t, Number(ranges[t].toPrecision(6))])),
    ),
  });
  return assembleSpec({ nodes, inits }, graphInterface(topology), metadata);
}
