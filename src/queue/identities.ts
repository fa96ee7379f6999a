/**
 * Who each photo of a run into a gallery shows, decided at submit: `dir` names a photo by the folder it is in
 * (`people/alice/1.jpg` -> alice; for a URL, the path segment before the file name), `csv:FILE` by a CSV of
 * `reference,identity` rows (an optional header of those two names; relative paths are resolved in the CSV's folder).
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parse } from 'csv-parse/sync';
import { fileError, usageError } from '../errors.js';
import { checkIdentity } from '../gallery/gallery.js';
import { isUrl, normalizeReference } from './references.js';

export type IdentitySource = { readonly kind: 'dir' } | { readonly kind: 'csv'; readonly file: string };

export function parseIdentitySource(value: string): IdentitySource {
  if (value === 'dir') return { kind: 'dir' };
  if (value.startsWith('csv:') && value.length > 4) return { kind: 'csv', file: value.slice(4) };
  throw usageError(`--identity-from: expected dir or csv:FILE, got ${JSON.stringify(value)}`, '--identity-from');
}

function folderOf(ref: string): string {
  if (isUrl(ref)) {
    const parts = new URL(ref).pathname.split('/').filter(Boolean);
    return parts.length >= 2 ? decodeURIComponent(parts[parts.length - 2]) : '';
  }
  return basename(dirname(ref));
}

/** The identity of every (normalised) reference, in order; a reference without one is a usage error. */
export async function identitiesFor(references: readonly string[], source: IdentitySource): Promise<string[]> {
  let lookup: (ref: string) => string | undefined;
  if (source.kind === 'dir') {
    lookup = folderOf;
  } else {
    let text: string;
    try {
      text = await readFile(source.file, 'utf8');
    } catch (err) {
      throw fileError(source.file, err);
    }
    let rows: string[][];
    try {
      rows = parse(text, { skip_empty_lines: true, trim: true, relax_column_count: true }) as string[][];
    } catch (err) {
      throw usageError(`${source.file}: not a CSV file: ${(err as Error).message}`, source.file);
    }
    if (rows.length > 0 && rows[0][0]?.toLowerCase() === 'reference' && rows[0][1]?.toLowerCase() === 'identity')
      rows = rows.slice(1);
    const map = new Map<string, string>();
    rows.forEach((row, i) => {
      if (row.length < 2 || !row[0] || !row[1])
        throw usageError(`${source.file}: row ${i + 1}: expected reference,identity`, source.file);
      map.set(normalizeReference(row[0], dirname(source.file)), row[1]);
    });
    lookup = (ref) => map.get(ref);
  }
  const missing: string[] = [];
  const out = references.map((ref) => {
    const id = lookup(ref);
    if (!id) missing.push(ref);
    return id ?? '';
  });
  if (missing.length > 0) {
    throw usageError(
      `--identity-from ${source.kind === 'dir' ? 'dir' : `csv:${source.file}`}: ${missing.length} ` +
        `photo${missing.length > 1 ? 's have' : ' has'} no identity, e.g. ${missing[0]}`,
      '--identity-from',
    );
  }
  for (const id of new Set(out)) {
    try {
      checkIdentity(id);
    } catch (err) {
      throw usageError(`--identity-from: ${(err as Error).message}`, '--identity-from');
    }
  }
  return out;
}
