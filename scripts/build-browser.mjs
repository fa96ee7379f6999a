#!/usr/bin/env node
// Builds `vggface/browser` (dist/browser/) with esbuild: vggface.js (the library, an ES module) and
// vggface-worker.js (the Web Worker that runs ONNX Runtime), minified, with source maps; then copies beside them the
// prebuilt onnxruntime-web files they load at run time (its ES modules and .wasm), so the folder can be served by
// any static server as it is. Prints the sizes. Usage: node scripts/build-browser.mjs [--quiet]
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'browser');
const quiet = process.argv.includes('--quiet');

/** onnxruntime-web's files the worker loads: the WebAssembly-only build, the WebGPU build, and their runtimes. */
export const ORT_FILES = [
  'ort.wasm.min.mjs',
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort.webgpu.min.mjs',
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
];

mkdirSync(out, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { vggface: 'src/browser/index.ts', 'vggface-worker': 'src/browser/worker.ts' },
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome100', 'firefox100', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});

// onnxruntime-web's exports name its .wasm files; the rest of dist/ is beside them.
const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
for (const f of ORT_FILES) {
  const src = join(ortDir, f);
  const dst = join(out, f);
  let same = false;
  try {
    const [a, b] = [statSync(src), statSync(dst)];
    same = a.size === b.size && a.mtimeMs <= b.mtimeMs;
  } catch {}
  if (!same) copyFileSync(src, dst);
}

const sizes = {};
for (const name of ['vggface.js', 'vggface-worker.js']) {
  const bytes = readFileSync(join(out, name));
  sizes[name] = { bytes: bytes.length, gzip: gzipSync(bytes).length };
}
if (!quiet) {
  for (const [name, s] of Object.entries(sizes))
    console.log(
      `dist/browser/${name}: ${(s.bytes / 1024).toFixed(1)} kB minified, ${(s.gzip / 1024).toFixed(1)} kB gzip`,
    );
  for (const f of ORT_FILES)
    console.log(`dist/browser/${f}: ${(statSync(join(out, f)).size / 1024).toFixed(1)} kB (onnxruntime-web, copied)`);
}
if (result.errors.length > 0) process.exit(1);
