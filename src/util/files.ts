import { openSync } from 'node:fs';
import { fileError } from '../errors.js';

/** Opens a file for reading; a missing file, a directory or a permission problem becomes an error naming the path. */
export function openForReading(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    throw fileError(path, err);
  }
}
