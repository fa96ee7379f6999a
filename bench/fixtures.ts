/** Full-size fixture files for the benchmark, generated once into .bench/ (random weights of the real dimensions). */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runTask, WORK_DIR } from './harness.js';

export const FULL_CAFFEMODEL = join(WORK_DIR, 'VGG_FACE_random.caffemodel');

export async function ensureFullCaffemodel(): Promise<string> {
  mkdirSync(WORK_DIR, { recursive: true });
  if (!existsSync(FULL_CAFFEMODEL)) await runTask('make-caffemodel', { path: FULL_CAFFEMODEL });
  return FULL_CAFFEMODEL;
}
