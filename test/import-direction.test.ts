// The folder layout of docs/DESIGN.md ("Folders"), checked: every import under src/ points down the data path.
// Each folder (and each file at the root of src/) has a layer; importing a higher layer, or another unit of the same
// layer, fails, and so does a new folder that has no layer yet (give it one here and in DESIGN.md).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Bottom first. */
const LAYERS: readonly (readonly string[])[] = [
  ['errors.ts', 'version.ts'],
  ['util', 'proto'],
  ['validate.ts'],
  ['options.ts'],
  ['runtime', 'distance'],
  ['weights'],
  ['image'],
  ['onnx'],
  ['model'],
  ['face'],
  ['describe-results.ts'],
  ['describe-options.ts'],
  ['describe-faces-options.ts'],
  ['describe-batches.ts'],
  ['describe-model.ts'],
  ['vggface.ts'],
  ['gallery', 'verify', 'output'],
  ['queue'],
  ['server', 'browser'],
  ['cli'],
  ['index.ts', 'internal.ts'],
];

const layerOf = new Map(LAYERS.flatMap((units, i) => units.map((u) => [u, i] as const)));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The layer unit of a path under src/: its top folder, or the file itself at the root. */
const unitOf = (file: string): string => relative(SRC, file).split(sep)[0].replace(/\.js$/, '.ts');

/** Relative imports and re-exports of a source file (static, dynamic, type-only alike). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const re = /(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  return [...text.matchAll(re)].map((m) => m[1] ?? m[2]).filter((spec) => spec.startsWith('.'));
}

test('every import under src/ points down the layers of docs/DESIGN.md', () => {
  const files = sources(SRC);
  assert.ok(files.length > 100, `found ${files.length} source files under ${SRC}`);
  const unplaced = new Set<string>();
  const upward: string[] = [];
  let checked = 0;
  for (const file of files) {
    const from = unitOf(file);
    const la = layerOf.get(from);
    if (la === undefined) unplaced.add(from);
    for (const spec of importsOf(file)) {
      const target = resolve(dirname(file), spec);
      // Paths outside src/ (web/ assets the server serves) are files, not modules of the layout.
      if (!target.startsWith(SRC + sep)) continue;
      const to = unitOf(target);
      if (to === from) continue;
      checked++;
      const lb = layerOf.get(to);
      if (lb === undefined) unplaced.add(to);
      else if (la !== undefined && lb >= la)
        upward.push(`${relative(SRC, file)} -> ${relative(SRC, target)} (layer ${la} imports layer ${lb})`);
    }
  }
  assert.ok(checked > 300, `checked ${checked} imports between folders`);
  assert.deepEqual([...unplaced], [], 'folders or root files with no layer');
  assert.deepEqual(upward, [], 'imports of a higher layer or of a sibling in the same layer');
});
