/**
 * The fp16 model ONNX Runtime would compute in fp16: every float tensor float16, the input cast to float16 and the
 * outputs back to float32. Not something the library writes: built here only to measure it against fp16 storage
 * with fp32 compute (the shipped fp16 model), on this machine.
 */
import { readWeights } from '../../src/weights/formats.js';
import { buildModelSpec } from '../../src/onnx/builder.js';
import { DataType, encodeModel, type InitializerSpec, type NodeSpec } from '../../src/onnx/proto.js';
import { encodeHalf } from '../../src/util/float16.js';
import { finishTask, taskArgs } from '../harness.js';

const { source, output } = taskArgs<{ source: string; output: string }>();
const { weights, topology } = await readWeights(source);
const spec = buildModelSpec(weights, topology, { preprocessing: 'caffe', precision: 'fp32' });
const outputs = new Set(spec.outputs.map((o) => o.name));
const half = (n: string) => (outputs.has(n) ? `${n}_fp16` : n);
const nodes: NodeSpec[] = spec.nodes.map((n, i) => ({
  ...n,
  inputs: n.inputs.map(half),
  outputs: n.outputs.map(half),
  // The first node casts the uint8 image to float: make it float16.
  attributes: i === 0 ? { to: { kind: 'int', value: DataType.FLOAT16 } } : n.attributes,
}));
for (const o of outputs)
  nodes.push({
    op: 'Cast',
    inputs: [`${o}_fp16`],
    outputs: [o],
    attributes: { to: { kind: 'int', value: DataType.FLOAT } },
  });
const initializers: InitializerSpec[] = spec.initializers.map((t) => {
  if (t.dataType !== DataType.FLOAT) return t;
  // 1e-12 (the L2 epsilon) underflows in float16: use its smallest normal instead.
  const f = t.name === 'l2_eps' ? Float32Array.of(2 ** -14) : new Float32Array(t.data.slice().buffer);
  return { ...t, dataType: DataType.FLOAT16, data: new Uint8Array(encodeHalf(f).buffer) };
});
encodeModel({
  ...spec,
  nodes,
  initializers,
  metadata: { ...spec.metadata, 'vggface.precision': 'fp16' },
}).writeFileAtomic(output);
finishTask({ output });
