/**
 * Dot products of one query against many stored descriptors, on ONNX Runtime: a one-node graph (Gemm for
 * float32 rows, MatMul for float16 rows) run over each block of the matrix. ONNX Runtime's kernels are
 * vectorised and multi-threaded, which a JavaScript loop is not (measured: about 10x faster at 100,000 x 4096).
 */
import { DataType, encodeModel, type ModelSpec } from '../onnx/proto.js';
import { openEngine, type InferenceEngine } from '../runtime/onnxruntime.js';

export type Precision = 'fp32' | 'fp16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'fp16'];

function scorerSpec(dim: number, precision: Precision): ModelSpec {
  const half = precision === 'fp16';
  const elem = half ? DataType.FLOAT16 : DataType.FLOAT;
  return {
    graphName: 'vggface_gallery_scores',
    producerName: 'vggface',
    producerVersion: '1',
    docString: 'scores[n] = rows[n, :] . query',
    opset: 17,
    irVersion: 8,
    nodes: half
      ? [
          { op: 'MatMul', inputs: ['rows', 'query'], outputs: ['scores_half'] },
          {
            op: 'Cast',
            inputs: ['scores_half'],
            outputs: ['scores'],
            attributes: { to: { kind: 'int', value: DataType.FLOAT } },
          },
        ]
      : // query [1, dim] x rows^T: the orientation measured fastest (a GEMV over row-major rows).
        [
          {
            op: 'Gemm',
            inputs: ['query', 'rows'],
            outputs: ['scores'],
            attributes: { transB: { kind: 'int', value: 1 } },
          },
        ],
    initializers: [],
    inputs: [
      { name: 'rows', elemType: elem, shape: ['n', dim] },
      { name: 'query', elemType: elem, shape: half ? [dim, 1] : [1, dim] },
    ],
    outputs: [{ name: 'scores', elemType: DataType.FLOAT, shape: half ? ['n', 1] : [1, 'n'] }],
    metadata: {},
  };
}

export interface Scorer {
  readonly precision: Precision;
  /** rows: count x dim (Float32Array for fp32, Uint16Array of half bits for fp16); query in the same precision. */
  scores(rows: Float32Array | Uint16Array, count: number, query: Float32Array | Uint16Array): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openScorer(dim: number, precision: Precision, threads?: number): Promise<Scorer> {
  const engine: InferenceEngine = await openEngine(encodeModel(scorerSpec(dim, precision)).toBuffer(), {
    threads,
    spinWait: false,
  });
  return {
    precision,
    async scores(rows, count, query) {
      const res = await engine.run(
        {
          rows: { data: rows, dims: [count, dim] },
          query: { data: query, dims: precision === 'fp16' ? [dim, 1] : [1, dim] },
        },
        ['scores'],
      );
      return res.scores.data;
    },
    close: () => engine.close(),
  };
}
