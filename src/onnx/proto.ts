/**
 * ONNX protobuf messages (onnx.proto3), encoded with the project's streaming writer.
 * Only what the VGG-Face graph needs: tensors with raw_data, nodes with int/float/ints attributes, typed I/O.
 */
import { ProtoMessage } from '../proto/writer.js';

export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10, DOUBLE: 11 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

export type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'string'; value: string };

export interface NodeSpec {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  readonly attributes?: Readonly<Record<string, AttributeValue>>;
}

export interface InitializerSpec {
  readonly name: string;
  readonly dataType: DataTypeCode;
  readonly dims: readonly number[];
  /** Little-endian element bytes; referenced, not copied, when the model is written. */
  readonly data: Uint8Array;
}

export interface ValueInfoSpec {
  readonly name: string;
  readonly elemType: DataTypeCode;
  /** A number for a fixed dimension, a string for a symbolic one (e.g. "batch"). */
  readonly shape: readonly (number | string)[];
  readonly doc?: string;
}

export interface ModelSpec {
  readonly graphName: string;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString: string;
  readonly opset: number;
  readonly irVersion: number;
  readonly nodes: readonly NodeSpec[];
  readonly initializers: readonly InitializerSpec[];
  readonly inputs: readonly ValueInfoSpec[];
  readonly outputs: readonly ValueInfoSpec[];
  readonly metadata: Readonly<Record<string, string>>;
  /** Extra operator-set imports, e.g. com.microsoft. */
  readonly extraOpsets?: readonly { domain: string; version: number }[];
}

// Field numbers from onnx.proto3.
const MODEL = {
  irVersion: 1,
  producerName: 2,
  producerVersion: 3,
  docString: 6,
  graph: 7,
  opsetImport: 8,
  metadataProps: 14,
} as const;
const GRAPH = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTR = { name: 1, f: 2, i: 3, s: 4, ints: 8, type: 20 } as const;
const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;

export function encodeTensor(t: InitializerSpec): ProtoMessage {
  const m = new ProtoMessage();
  for (const d of t.dims) m.varint(TENSOR.dims, d);
  m.varint(TENSOR.dataType, t.dataType);
  m.string(TENSOR.name, t.name);
  m.bytes(TENSOR.rawData, t.data);
  return m;
}

function encodeAttribute(name: string, a: AttributeValue): ProtoMessage {
  const m = new ProtoMessage().string(ATTR.name, name);
  switch (a.kind) {
    case 'int':
      return m.varint(ATTR.i, a.value).varint(ATTR.type, ATTR_TYPE.INT);
    case 'float':
      return m.float(ATTR.f, a.value).varint(ATTR.type, ATTR_TYPE.FLOAT);
    case 'ints':
      for (const v of a.value) m.varint(ATTR.ints, v);
      return m.varint(ATTR.type, ATTR_TYPE.INTS);
    case 'string':
      return m.string(ATTR.s, a.value).varint(ATTR.type, ATTR_TYPE.STRING);
  }
}

function encodeNode(n: NodeSpec): ProtoMessage {
  const m = new ProtoMessage();
  for (const i of n.inputs) m.string(NODE.input, i);
  for (const o of n.outputs) m.string(NODE.output, o);
  if (n.name) m.string(NODE.name, n.name);
  m.string(NODE.opType, n.op);
  for (const [k, v] of Object.entries(n.attributes ?? {})) m.message(NODE.attribute, encodeAttribute(k, v));
  if (n.domain) m.string(NODE.domain, n.domain);
  return m;
}

function encodeValueInfo(v: ValueInfoSpec): ProtoMessage {
  const shape = new ProtoMessage();
  for (const d of v.shape) {
    const dim = new ProtoMessage();
    if (typeof d === 'number') dim.varint(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoMessage().varint(1, v.elemType).message(2, shape);
  const type = new ProtoMessage().message(1, tensorType);
  const m = new ProtoMessage().string(1, v.name).message(2, type);
  if (v.doc) m.string(3, v.doc);
  return m;
}

/** Encodes a model; initializer data is referenced, so the result holds no second copy of the weights. */
export function encodeModel(spec: ModelSpec): ProtoMessage {
  const graph = new ProtoMessage();
  for (const n of spec.nodes) graph.message(GRAPH.node, encodeNode(n));
  graph.string(GRAPH.name, spec.graphName);
  for (const t of spec.initializers) graph.message(GRAPH.initializer, encodeTensor(t));
  graph.string(GRAPH.docString, spec.docString);
  for (const i of spec.inputs) graph.message(GRAPH.input, encodeValueInfo(i));
  for (const o of spec.outputs) graph.message(GRAPH.output, encodeValueInfo(o));

  const model = new ProtoMessage()
    .varint(MODEL.irVersion, spec.irVersion)
    .string(MODEL.producerName, spec.producerName)
    .string(MODEL.producerVersion, spec.producerVersion)
    .string(MODEL.docString, spec.docString)
    .message(MODEL.graph, graph);
  model.message(MODEL.opsetImport, new ProtoMessage().string(1, '').varint(2, spec.opset));
  for (const o of spec.extraOpsets ?? [])
    model.message(MODEL.opsetImport, new ProtoMessage().string(1, o.domain).varint(2, o.version));
  for (const [k, v] of Object.entries(spec.metadata)) {
    model.message(MODEL.metadataProps, new ProtoMessage().string(1, k).string(2, v));
  }
  return model;
}
