/**
 * Pair lists for verification and evaluation, in the two formats in use:
 * - LFW `pairs.txt`: a header ("10\t300": 10 folds of 300 same + 300 different pairs; or "N": one set of N + N),
 *   then `name<TAB>n1<TAB>n2` (same person) or `name1<TAB>n1<TAB>name2<TAB>n2` (different people); the image is
 *   `<images>/<name>/<name>_<n as 4 digits>.jpg`. Folds are the file's own.
 * - CSV with a header naming `file_x`, `file_y` and optionally `Decision` (Yes/No), like deepface's master.csv;
 *   image paths are relative to the images folder.
 * Every problem names the file and line.
 */
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { fileError, formatError, VggFaceError } from '../errors.js';

export interface ImagePair {
  readonly a: string;
  readonly b: string;
  /** Whether the images are of the same person, when the file says. */
  readonly same?: boolean;
  /** 0-based fold, when the file defines folds (LFW). */
  readonly fold?: number;
  /** 1-based line in the file. */
  readonly line: number;
}

export interface PairList {
  readonly path: string;
  readonly format: 'lfw' | 'csv';
  readonly pairs: readonly ImagePair[];
}

const DECISIONS: Record<string, boolean> = {
  yes: true,
  no: false,
  true: true,
  false: false,
  '1': true,
  '0': false,
  same: true,
  different: false,
};

/** Reads a pair list; `imagesDir` is where image names are resolved (absolute CSV paths are kept). */
export async function readPairList(path: string, imagesDir: string): Promise<PairList> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw fileError(path, err);
  }
  const firstLine = text.split(/\r?\n/, 1)[0] ?? '';
  if (text.trim() === '') throw formatError(path, 'empty pairs file');
  return firstLine.includes(',') ? parseCsvPairs(path, text, imagesDir) : parseLfwPairs(path, text, imagesDir);
}

function lfwImage(imagesDir: string, name: string, n: string): string {
  return join(imagesDir, name, `${name}_${n.padStart(4, '0')}.jpg`);
}

export function parseLfwPairs(path: string, text: string, imagesDir: string): PairList {
  const lines = text.split(/\r?\n/);
  const header = lines[0].trim().split(/\s+/);
  if (header.length > 2 || !header.every((h) => /^\d+$/.test(h))) {
    throw formatError(
      path,
      'line 1: expected the LFW header "<folds> <pairs per class>" or "<pairs ' +
        `per class>", got "${lines[0].trim().slice(0, 60)}"`,
    );
  }
  const [sets, perClass] = header.length === 2 ? [Number(header[0]), Number(header[1])] : [1, Number(header[0])];
  const pairs: ImagePair[] = [];
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    const f = raw.split(/\s+/);
    const line = i + 1;
    const fold = header.length === 2 && perClass > 0 ? Math.floor(pairs.length / (2 * perClass)) : undefined;
    if (f.length === 3 && /^\d+$/.test(f[1]) && /^\d+$/.test(f[2])) {
      pairs.push({ a: lfwImage(imagesDir, f[0], f[1]), b: lfwImage(imagesDir, f[0], f[2]), same: true, fold, line });
    } else if (f.length === 4 && /^\d+$/.test(f[1]) && /^\d+$/.test(f[3])) {
      pairs.push({ a: lfwImage(imagesDir, f[0], f[1]), b: lfwImage(imagesDir, f[2], f[3]), same: false, fold, line });
    } else {
      throw formatError(path, `line ${line}: expected "name n1 n2" or "name1 n1 name2 n2", got "${raw.slice(0, 80)}"`);
    }
  }
  const expected = sets * perClass * 2;
  if (pairs.length !== expected) {
    throw formatError(
      path,
      `the header announces ${sets} x ${perClass} same + ${perClass} different ` +
        `= ${expected} pairs, the file has ${pairs.length}`,
    );
  }
  return { path, format: 'lfw', pairs };
}

export function parseCsvPairs(path: string, text: string, imagesDir: string): PairList {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      info: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: true,
      bom: true,
    }) as never;
  } catch (err) {
    const e = err as { lines?: number; message?: string };
    throw formatError(path, `${e.lines ? `line ${e.lines}: ` : ''}not valid CSV: ${e.message ?? String(err)}`, err);
  }
  if (records.length === 0) throw formatError(path, 'empty pairs file');
  const header = records[0].record.map((h) => h.toLowerCase());
  const col = (names: string[]) => header.findIndex((h) => names.includes(h));
  const ix = col(['file_x', 'img1', 'image1', 'a']);
  const iy = col(['file_y', 'img2', 'image2', 'b']);
  const id = col(['decision', 'same', 'label']);
  if (ix < 0 || iy < 0) {
    throw formatError(
      path,
      'line 1: expected a header with columns file_x and file_y (and optionally ' +
        `Decision), got "${records[0].record.join(',').slice(0, 80)}"`,
    );
  }
  const resolve = (p: string) => (isAbsolute(p) ? p : join(imagesDir, p));
  const pairs: ImagePair[] = [];
  for (const { record, info } of records.slice(1)) {
    const line = info.lines;
    const need = Math.max(ix, iy, id) + 1;
    if (record.length < need) throw formatError(path, `line ${line}: expected ${need} columns, got ${record.length}`);
    const a = record[ix];
    const b = record[iy];
    if (!a || !b) throw formatError(path, `line ${line}: empty image name`);
    let same: boolean | undefined;
    if (id >= 0) {
      same = DECISIONS[record[id].toLowerCase()];
      if (same === undefined)
        throw formatError(path, `line ${line}: Decision must be Yes or No, got "${record[id].slice(0, 40)}"`);
    }
    pairs.push({ a: resolve(a), b: resolve(b), same, line });
  }
  if (pairs.length === 0) throw formatError(path, 'no pairs after the header');
  return { path, format: 'csv', pairs };
}

/** Checks that every image exists before any work starts; names up to five missing ones with their lines. */
export async function checkPairImages(list: PairList): Promise<void> {
  const seen = new Map<string, boolean>();
  const missing: string[] = [];
  for (const p of list.pairs) {
    for (const img of [p.a, p.b]) {
      let ok = seen.get(img);
      if (ok === undefined) {
        ok = await stat(img).then(
          (s) => s.isFile(),
          () => false,
        );
        seen.set(img, ok);
      }
      if (!ok && missing.length < 5) missing.push(`line ${p.line}: ${img}`);
    }
  }
  if (missing.length > 0) {
    const total = list.pairs.filter((p) => !seen.get(p.a) || !seen.get(p.b)).length;
    throw new VggFaceError(
      'E_NOT_FOUND',
      `${list.path}: ${total} pair(s) name images that do not exist: ${missing.join('; ')}`,
      { input: list.path },
    );
  }
}
