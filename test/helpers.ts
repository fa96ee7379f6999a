/** Shared test helpers: the shared fixtures, golden numbers, tolerant comparison and running the CLI. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

/** Repository root (tests run compiled from dist/test). */
export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SHARED = resolve(ROOT, '..', 'shared');
export const GOLDEN_DIR = join(SHARED, 'golden', 'tiny');
export const FACES_DIR = join(SHARED, 'data', 'faces');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
export const GOLDEN_IMAGES = ['img1.png', 'img2.png', 'img5.png', 'img12.png'] as const;

// Tests never touch the user's cache or gallery: whatever a test does not point elsewhere lands in a temporary
// folder of this test process (child processes inherit it), removed when the process exits.
const isolated = mkdtempSync(join(tmpdir(), 'vggface-test-home-'));
process.env.VGGFACE_CACHE ||= join(isolated, 'cache');
process.env.VGGFACE_GALLERY ||= join(isolated, 'gallery.db');
process.on('exit', () => rmSync(isolated, { recursive: true, force: true }));

export interface GoldenImage {
  fc6: number[];
  fc7: number[];
  fc7_pre: number[];
  fc8: number[];
  fc7_l2: number[];
  deepface_fc7_l2: number[];
}
export const golden: { images: Record<string, GoldenImage> } = JSON.parse(
  readFileSync(join(GOLDEN_DIR, 'golden.json'), 'utf8'),
);

/**
 * Asserts |actual - expected| <= rtol * (|expected| + max|expected|) elementwise: 1e-4 relative to each value,
 * with the vector's scale as the floor so values that are nearly zero do not demand absolute precision.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol = 1e-4,
  what = 'vector',
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= rtol * (Math.abs(expected[i]) + scale))) {
      assert.fail(`${what}[${i}]: ${actual[i]} differs from ${expected[i]} by ${err} (> ${rtol} relative)`);
    }
  }
}

/** A temporary directory removed after the test. */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'vggface-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI in a child process, as a user would. */
export function runCli(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** Parses JSON-lines output. */
export function jsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

/** The descriptor of the largest face of each photo, as verify and the gallery compute them. */
export async function describeLargestFaces(
  model: { describePhotos(inputs: Iterable<string>): AsyncGenerator<{ descriptor?: Float32Array; error?: Error }> },
  photos: readonly string[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for await (const r of model.describePhotos(photos)) {
    if (r.error) throw r.error;
    out.push(r.descriptor!);
  }
  return out;
}

/** A TCP port free on 127.0.0.1 right now (for a server a test starts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}
