/**
 * Matrix products on ONNX Runtime for the gallery's projection (fitting a PCA, projecting descriptors) and the
 * benchmark's descriptor generator: a one-node Gemm graph with both operands as inputs. ONNX Runtime's kernels are
 * vectorised and multi-threaded; a 20,000 x 4096 covariance is 3.4e11 multiply-adds, minutes in a JavaScript loop.
 */
import { DataType, encodeModel } from '../onnx/proto.js';
import { openEngine, type InferenceEngine } from '../runtime/onnxruntime.js';

export interface Matrix {
  /** Row-major values. */
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

export interface Gemm {
  /** op(a) x op(b), op transposing when the Gemm was opened with transA / transB. */
  multiply(a: Matrix, b: Matrix): Promise<Matrix>;
  close(): Promise<void>;
}

/** Opens a product `op(A) x op(B)`; one session per orientation (each is a few kilobytes). */
export async function openGemm(options: { transA?: boolean; transB?: boolean; threads?: number } = {}): Promise<Gemm> {
  const transA = options.transA ? 1 : 0;
  const transB = options.transB ? 1 : 0;
  const model = encodeModel({
    graphName: 'vggface_gemm',
    producerName: 'vggface',
    producerVersion: '1',
    docString: `y = ${transA ? 'a^T' : 'a'} x ${transB ? 'b^T' : 'b'}`,
    opset: 17,
    irVersion: 8,
    nodes: [
      {
        op: 'Gemm',
        inputs: ['a', 'b'],
        outputs: ['y'],
        attributes: { transA: { kind: 'int', value: transA }, transB: { kind: 'int', value: transB } },
      },
    ],
    initializers: [],
    inputs: [
      { name: 'a', elemType: DataType.FLOAT, shape: ['ar', 'ac'] },
      { name: 'b', elemType: DataType.FLOAT, shape: ['br', 'bc'] },
    ],
    outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: ['m', 'n'] }],
    metadata: {},
  }).toBuffer();
  const engine: InferenceEngine = await openEngine(model, { threads: options.threads, spinWait: false });
  return {
    async multiply(a, b) {
      if (a.data.length !== a.rows * a.cols || b.data.length !== b.rows * b.cols)
        throw new Error('internal: matrix data does not match its shape');
      const inner = transA ? a.rows : a.cols;
      if (inner !== (transB ? b.cols : b.rows))
        throw new Error(
          `internal: cannot multiply ${a.rows}x${a.cols} by ${b.rows}x${b.cols} (transA ${transA}, transB ${transB})`,
        );
      const r = await engine.run(
        { a: { data: a.data, dims: [a.rows, a.cols] }, b: { data: b.data, dims: [b.rows, b.cols] } },
        ['y'],
      );
      return { data: r.y.data, rows: r.y.dims[0], cols: r.y.dims[1] };
    },
    close: () => engine.close(),
  };
}
