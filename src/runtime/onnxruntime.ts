/**
 * The one module that talks to ONNX Runtime (onnxruntime-node). Everything else sees `InferenceEngine`,
 * so a browser build can swap in onnxruntime-web here and nowhere else.
 */
import { availableParallelism } from 'node:os';
// First: ONNX Runtime reads its telemetry opt-out when it loads (see no-telemetry.ts).
import './no-telemetry.js';
import * as ort from 'onnxruntime-node';
import { VggFaceError } from '../errors.js';

export interface EngineOptions {
  /** Intra-op threads; defaults to the number of cores. */
  threads?: number;
  /** Full graph optimisation by default; 'basic' keeps the graph closer to the file (used to check fidelity). */
  optimization?: 'all' | 'basic' | 'disabled';
  /**
   * ONNX Runtime's `session.x64quantprecision`: on x86 CPUs whose int8 kernels sum pairs of products in a saturating
   * int16 (no VNNI), rewrite int8 weights to uint8 and use the exact U8U8 kernels. Measured on an AVX2 Zen 3: int8
   * at 1.36x fp32 instead of 1.92x, so it is only turned on for int8 models whose weights could saturate.
   */
  exactInt8Kernels?: boolean;
  /**
   * Whether idle intra-op threads spin, waiting for the next run (ONNX Runtime's default), or sleep. The gallery's
   * small sessions, which a search runs one after another (the projector, then the scorer over each block), sleep:
   * one session's threads spinning after its run took the cores from the next one's. Measured on 1,000,000 faces in
   * SQLite, 2 cores, descriptors in the page cache: search p50 59 ms spinning, 36 ms sleeping (scoring 52 -> 32 ms).
   */
  spinWait?: boolean;
}

export interface TensorData {
  /** A Uint16Array holds float16 values (IEEE half, as bits). */
  readonly data: Float32Array | Uint8Array | Int8Array | Uint16Array;
  readonly dims: readonly number[];
}

export interface InferenceEngine {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(
    feeds: Record<string, TensorData>,
    outputs: readonly string[],
  ): Promise<Record<string, { data: Float32Array; dims: readonly number[] }>>;
  close(): Promise<void>;
}

function tensorType(data: TensorData['data']): 'float32' | 'uint8' | 'int8' | 'float16' {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Uint16Array) return 'float16';
  return 'int8';
}

/**
 * An ONNX Runtime tensor over `t`'s data, without a copy. On Node 24 and later (a global Float16Array),
 * onnxruntime-node
 * 1.30 turns a float16 Uint16Array into a Float16Array view that its native binding then reads as 0 bytes ("not enough
 * space: expected N, got 0"; microsoft/onnxruntime#32323, open): the tensor keeps the Uint16Array it was given instead.
 */
function tensorOf(t: TensorData): ort.Tensor {
  const tensor = new ort.Tensor(tensorType(t.data), t.data, t.dims);
  if (t.data instanceof Uint16Array && !(tensor.data instanceof Uint16Array))
    (tensor as unknown as { cpuData: Uint16Array }).cpuData = t.data;
  return tensor;
}

export function defaultThreads(): number {
  return availableParallelism();
}

/**
 * Opens an ONNX model file (ONNX Runtime reads the file itself, so its bytes are never held by JavaScript),
 * or a small model built in memory (the gallery's matrix-product graph).
 */
export async function openEngine(model: string | Uint8Array, options: EngineOptions = {}): Promise<InferenceEngine> {
  const modelPath = typeof model === 'string' ? model : 'in-memory model';
  let session: ort.InferenceSession;
  try {
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: options.threads ?? defaultThreads(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: options.optimization ?? 'all',
      executionProviders: ['cpu'],
      extra: {
        session: {
          ...(options.exactInt8Kernels ? { x64quantprecision: '1' } : {}),
          ...(options.spinWait === false ? { intra_op: { allow_spinning: '0' } } : {}),
        },
      },
    };
    session =
      typeof model === 'string'
        ? await ort.InferenceSession.create(model, sessionOptions)
        : await ort.InferenceSession.create(model, sessionOptions);
  } catch (err) {
    throw new VggFaceError('E_MODEL', `${modelPath}: ONNX Runtime cannot load this model: ${(err as Error).message}`, {
      input: modelPath,
      cause: err,
    });
  }
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, outputs) {
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = tensorOf(t);
      const result = await session.run(ortFeeds, outputs as string[]);
      const out: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
      for (const name of outputs) {
        const t = result[name];
        if (!(t.data instanceof Float32Array))
          throw new VggFaceError('E_MODEL', `output ${name} is ${t.type}, expected float32`);
        out[name] = { data: t.data, dims: t.dims };
      }
      return out;
    },
    async close() {
      await session.release();
    },
  };
}
