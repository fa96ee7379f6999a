/**
 * The images a command works on: paths given as arguments, folders (walked recursively, image extensions only,
 * sorted so runs are repeatable), and `--list FILE` (one path per line, `-` for stdin) for runs too large for
 * a command line (100,000 photos).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileError, usageError } from '../errors.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.heic', '.heif'];

function isImageName(name: string): boolean {
  const dot = name.lastIndexOf('.');
  return dot >= 0 && IMAGE_EXTENSIONS.includes(name.slice(dot).toLowerCase());
}

async function walk(dir: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw fileError(dir, err);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() && isImageName(e.name)) out.push(p);
  }
}

async function readList(file: string, stdin: NodeJS.ReadableStream): Promise<string[]> {
  let text: string;
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of stdin as AsyncIterable<Buffer>) chunks.push(c);
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw fileError(file, err);
    }
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

export async function collectImages(
  args: readonly string[],
  list: string | undefined,
  stdin: NodeJS.ReadableStream,
): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    let isDir = false;
    try {
      isDir = (await stat(arg)).isDirectory();
    } catch {
      isDir = false; // a missing file is reported per image, so the rest of the batch goes on
    }
    if (isDir) await walk(arg, out);
    else out.push(arg);
  }
  if (list !== undefined) out.push(...(await readList(list, stdin)));
  if (out.length === 0)
    throw usageError(
      args.length > 0
        ? `no images found in ${args.join(', ')}`
        : 'no images: give image files, folders, or --list FILE',
      'images',
    );
  return out;
}
