/**
 * onnxruntime-web sessions, where ONNX Runtime runs (the Web Worker of worker.ts, or the page with `worker: false`).
 *
 * onnxruntime-web is not bundled: its own prebuilt ES modules are loaded at run time from beside this file (the
 * build copies them there) or from `wasmPaths`, and they find their .wasm files in the same place.
 * `ort.webgpu.min.mjs` (WebGPU and WebAssembly) is loaded when the browser has a WebGPU adapter and the backend is
 * `auto` or `webgpu`; `ort.wasm.min.mjs` (WebAssembly only, half the download) otherwise. WebAssembly uses SIMD, and
 * threads when the page is cross-origin isolated (SharedArrayBuffer).
 */
import type * as Ort from 'onnxruntime-web';

export type Backend = 'auto' | 'wasm' | 'webgpu';
export const BACKENDS: readonly Backend[] = ['auto', 'wasm', 'webgpu'];

export interface RuntimeOptions {
  readonly backend: Backend;
  /** Where onnxruntime-web's files are (a URL prefix ending in /); default: beside the vggface bundle. */
  readonly wasmPaths?: string;
  /** WebAssembly threads; default onnxruntime-web's (up to 4 when cross-origin isolated, else 1). */
  readonly threads?: number;
}

export interface TensorData {
  readonly type: 'uint8' | 'float32';
  readonly data: Uint8Array | Float32Array;
  readonly dims: readonly number[];
}

export interface SessionInfo {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** What runs the model: `webgpu`, or `wasm` with this many threads. */
  readonly backend: 'webgpu' | 'wasm';
  readonly threads: number;
}

export interface Session extends SessionInfo {
  /** Runs the model. The feeds' buffers are taken over (moved to the worker). */
  run(
    feeds: Record<string, TensorData>,
    outputs: readonly string[],
  ): Promise<Record<string, { data: Float32Array; dims: number[] }>>;
  close(): Promise<void>;
}

const loaded = new Map<string, Promise<typeof Ort>>();

/** The base URL of onnxruntime-web's files. */
export function ortBase(wasmPaths: string | undefined): string {
  return new URL(wasmPaths ?? './', import.meta.url).href;
}

async function hasWebGpu(): Promise<boolean> {
  const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) != null;
  } catch {
    return false;
  }
}

function loadOrt(file: string, base: string, threads: number | undefined): Promise<typeof Ort> {
  const url = new URL(file, base).href;
  let p = loaded.get(url);
  if (!p) {
    p = (async () => {
      let ort: typeof Ort;
      try {
        ort = (await import(/* @vite-ignore */ /* webpackIgnore: true */ url)) as typeof Ort;
      } catch (err) {
        throw new Error(
          `cannot load onnxruntime-web from ${url} (${(err as Error).message}); ` +
            'serve its files beside vggface.js or pass wasmPaths',
        );
      }
      ort.env.wasm.wasmPaths = base;
      if (threads !== undefined) ort.env.wasm.numThreads = threads;
      ort.env.logLevel = 'error';
      return ort;
    })();
    loaded.set(url, p);
    p.catch(() => loaded.delete(url));
  }
  return p;
}

export async function openSession(model: Uint8Array, options: RuntimeOptions): Promise<Session> {
  const base = ortBase(options.wasmPaths);
  const gpu = options.backend !== 'wasm' && (await hasWebGpu());
  if (options.backend === 'webgpu' && !gpu)
    throw new Error('backend "webgpu" was asked for, but this browser has no WebGPU adapter');
  const ort = await loadOrt(gpu ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs', base, options.threads);
  let session: Ort.InferenceSession | undefined;
  let backend: 'webgpu' | 'wasm' = 'wasm';
  if (gpu) {
    try {
      session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu', 'wasm'] });
      backend = 'webgpu';
    } catch (err) {
      if (options.backend === 'webgpu') throw err;
      // A model WebGPU cannot take runs on WebAssembly, from the same build.
    }
  }
  session ??= await ort.InferenceSession.create(model, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const s = session;
  return {
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    backend,
    threads: backend === 'wasm' ? (ort.env.wasm.numThreads ?? 1) : 0,
    async run(feeds, outputs) {
      const inputs: Record<string, Ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) inputs[name] = new ort.Tensor(t.type, t.data, t.dims);
      const res = await s.run(inputs, outputs as string[]);
      const out: Record<string, { data: Float32Array; dims: number[] }> = {};
      for (const name of outputs) out[name] = { data: res[name].data as Float32Array, dims: [...res[name].dims] };
      return out;
    },
    close: () => s.release(),
  };
}
