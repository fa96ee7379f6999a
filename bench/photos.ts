/** 200 JPEG photos of mixed sizes for end-to-end benchmarks, made once from ../shared/data/faces into .bench/. */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { ROOT, WORK_DIR } from './harness.js';

const FACES = join(ROOT, '..', 'shared', 'data', 'faces');
/** Longer sides from thumbnail to phone-photo size. */
const SIDES = [160, 224, 320, 480, 640, 800, 1024, 1280, 1600, 2048];

export async function mixedJpegs(count = 200): Promise<string[]> {
  const dir = join(WORK_DIR, `jpegs-${count}`);
  mkdirSync(dir, { recursive: true });
  const sources = readdirSync(FACES)
    .filter((f) => f.endsWith('.jpg'))
    .sort();
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const side = SIDES[i % SIDES.length];
    const path = join(dir, `photo-${String(i).padStart(3, '0')}-${side}.jpg`);
    if (!existsSync(path)) {
      await sharp(join(FACES, sources[i % sources.length]))
        .resize(side, side, { fit: 'inside', kernel: 'lanczos3' })
        .jpeg({ quality: 90 })
        .toFile(path);
    }
    out.push(path);
  }
  return out;
}
