/**
 * Benchmark harness: every measurement runs in a fresh child process (so peak RSS is its own), sections are
 * registered in sections.ts, and results can be written into BENCHMARKS.md between
 * `<!-- bench:NAME:start -->` / `<!-- bench:NAME:end -->` markers.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuFeatures, INT8_FLAGS } from '../src/runtime/cpu.js';

export const BENCH_DIR = fileURLToPath(new URL('.', import.meta.url));
export const ROOT = join(BENCH_DIR, '..', '..');
export const WORK_DIR = join(ROOT, '.bench');

export interface SectionContext {
  /** Shorter runs for a smoke check (numbers not for the record). */
  readonly quick: boolean;
  log(message: string): void;
}

export interface Section {
  readonly name: string;
  readonly title: string;
  /**
   * Where --write records it in BENCHMARKS.md, when that depends on the machine: the precision section keeps one
   * record per CPU kind, since int8 speed (and, for full-range weights, fidelity) depends on it.
   */
  readonly record?: () => { name: string; title: string };
  /** Returns markdown for BENCHMARKS.md. */
  run(ctx: SectionContext): Promise<string>;
}

export interface ChildResult<T> {
  readonly result: T;
  /** Peak resident set size of the child, in bytes. */
  readonly maxRss: number;
  readonly wallMs: number;
}

/** Runs `dist/bench/tasks/<task>.js` in a new Node process and returns what it printed as JSON on its last line. */
export function runTask<T>(
  task: string,
  args: Record<string, unknown>,
  nodeFlags: string[] = [],
): Promise<ChildResult<T>> {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const child = spawn(
      process.execPath,
      [...nodeFlags, join(BENCH_DIR, 'tasks', `${task}.js`), JSON.stringify(args)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`bench task ${task} exited with ${code}`));
      const last = out.trim().split('\n').pop() ?? '';
      const parsed = JSON.parse(last) as { result: T; maxRss: number };
      resolve({ result: parsed.result, maxRss: parsed.maxRss, wallMs: Date.now() - start });
    });
  });
}

/** Used by tasks: prints the result with this process's peak RSS. */
export function finishTask(result: unknown): void {
  process.stdout.write(JSON.stringify({ result, maxRss: process.resourceUsage().maxRSS * 1024 }) + '\n');
}

export function taskArgs<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}

export function machineLine(): string {
  const c = cpus();
  const flags = cpuFeatures().flags;
  const cpuFlags =
    flags === undefined ? 'unknown' : flags.length > 0 ? flags.join(' ') : `none of ${INT8_FLAGS.join(', ')}`;
  return (
    `${c.length} x ${c[0]?.model ?? 'unknown CPU'} (CPU ` +
    `flags: ${cpuFlags}), ${(totalmem() / 1024 ** 3).toFixed(0)} GiB RAM, ` +
    `Node ${process.version}, ${process.platform}-${process.arch}`
  );
}

/** The CPU kind int8 figures belong to: which kernels ONNX Runtime runs (see src/runtime/cpu.ts). */
export function int8CpuKind(): { id: string; label: string; vnni: boolean } {
  const cpu = cpuFeatures();
  const has = (f: string) => cpu.flags?.includes(f as never) ?? false;
  if (cpu.arch !== 'x64') return { id: cpu.arch, label: cpu.arch, vnni: true };
  if (has('amx_int8')) return { id: 'amx', label: 'x86 with AMX', vnni: true };
  if (has('avx512_vnni')) return { id: 'avx512-vnni', label: 'x86 with AVX-512 VNNI', vnni: true };
  if (has('avx_vnni')) return { id: 'avx-vnni', label: 'x86 with AVX-VNNI', vnni: true };
  if (has('avx512f')) return { id: 'avx512', label: 'x86 with AVX-512, no VNNI', vnni: false };
  return { id: 'avx2', label: 'x86 with AVX2, no VNNI', vnni: false };
}

export const mb = (bytes: number): string => `${(bytes / 1024 ** 2).toFixed(0)} MiB`;

export { median } from '../src/util/stats.js';

/** Replaces the text between a section's markers in BENCHMARKS.md (appends the section when missing). */
export function writeSection(file: string, name: string, markdown: string): void {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text = '# Benchmarks\n';
  }
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}
