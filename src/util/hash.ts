import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { fileError } from '../errors.js';
import { regularFileStat } from './files.js';

/** sha256 of a regular file, streamed (about 2 GB/s here: 0.3 s for the 553 MB caffemodel). */
export async function sha256File(path: string): Promise<string> {
  regularFileStat(path); // /dev/zero would never end, a FIFO would wait for a writer
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
  } catch (err) {
    throw fileError(path, err);
  }
  return hash.digest('hex');
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
