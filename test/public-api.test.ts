/**
 * The package root is a deliberate surface: its exact runtime exports, what importing it loads, and the type tests
 * (test/types/: user code that must compile, internals that must not be importable from the root).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as api from 'vggface';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const MAX_RUNTIME_EXPORTS = 45;
const GALLERY_MODULE = new URL('../src/gallery/gallery.js', import.meta.url).href;

/** Every runtime value of `import ... from 'vggface'`: adding one here is a decision about the public API. */
const ROOT_EXPORTS = [
  // The model.
  'VggFace',
  'LAYERS',
  'l2normalize',
  'FITS',
  'PREPROCESSING',
  'MODEL_PRECISIONS',
  'MODEL_INPUT',
  'MODEL_OUTPUTS',
  // Faces in photos.
  'FaceDetector',
  'ALIGN_MODES',
  // Galleries.
  'Gallery',
  'defaultGalleryPath',
  'STORAGE_PRECISIONS',
  'UNKNOWN',
  // Distances, verification, thresholds.
  'distance',
  'METRICS',
  'DEFAULT_METRIC',
  'verifyDescriptors',
  'DEEPFACE_THRESHOLDS',
  'modelIdentity',
  'resolveThreshold',
  // Evaluation.
  'readPairList',
  'evaluatePairs',
  'FARS',
  'rocCurve',
  'rocAuc',
  'equalErrorRate',
  'tarAtFar',
  'accuracyAt',
  'bestThreshold',
  'rocSvg',
  'writeRocPlot',
  // Weights and conversion.
  'readWeights',
  'detectFormat',
  'formatIds',
  'convertWeightsToOnnx',
  'readOnnxInfo',
  'fetchWeights',
  'WEIGHT_SOURCES',
  // Errors.
  'VggFaceError',
];

test(`the package root exports exactly the listed runtime values (at most ${MAX_RUNTIME_EXPORTS})`, () => {
  const names = Object.keys(api).sort();
  assert.deepEqual(names, [...ROOT_EXPORTS].sort());
  assert.equal(names.length, 40);
  assert.ok(names.length <= MAX_RUNTIME_EXPORTS, `${names.length} runtime exports`);
  assert.deepEqual(api.MODEL_PRECISIONS, ['fp32', 'fp16', 'int8']);
  assert.deepEqual(api.STORAGE_PRECISIONS, ['fp32', 'fp16']);
  assert.deepEqual(api.ALIGN_MODES, ['none', 'eyes', '5pt']);
});

/**
 * A child process imports the root as a user does and reports which of pg and better-sqlite3 (CommonJS packages:
 * imported from ESM they still go through the CommonJS loader and its require.cache) are loaded; then opens a
 * SQLite gallery store, then imports vggface/internal. The later steps are the controls: they show the check sees
 * each module once it is loaded.
 */
test('importing the package root loads neither pg nor better-sqlite3; opening a gallery loads its store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vggface-lazy-'));
  try {
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const loaded = () => {
        const files = Object.keys(require.cache);
        return {
          pg: files.some((f) => f.includes('/node_modules/pg/')),
          betterSqlite3: files.some((f) => f.includes('/node_modules/better-sqlite3/')),
        };
      };
      const steps = {};
      const api = await import('vggface');
      steps.root = { ...loaded(), hasGallery: typeof api.Gallery === 'function' };
      const { openGalleryStore } = await import(${JSON.stringify(GALLERY_MODULE)});
      steps.galleryModule = loaded();
      const store = await openGalleryStore(${JSON.stringify(join(dir, 'gallery.db'))}, { create: true });
      await store.close();
      steps.sqliteOpened = loaded();
      await import('vggface/internal');
      steps.internal = loaded();
      console.log(JSON.stringify(steps));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      root: { pg: false, betterSqlite3: false, hasGallery: true },
      galleryModule: { pg: false, betterSqlite3: false },
      sqliteOpened: { pg: false, betterSqlite3: true },
      internal: { pg: true, betterSqlite3: true },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function tsc(project: string): { status: number | null; output: string } {
  const args = [TSC, '-p', project, '--noEmit', '--pretty', 'false'];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('type tests: user code compiles against the root, internals and int8 galleries do not (test/types)', () => {
  const r = tsc(join(ROOT, 'test', 'types', 'tsconfig.json'));
  assert.equal(r.output.trim(), '');
  assert.equal(r.status, 0);
});

test('type tests: the README example is test/types/public.ts, line for line', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /^## Library\n+```ts\n([\s\S]*?)\n```/m.exec(readme);
  assert.ok(block, 'README: a ```ts block under ## Library');
  const expected = block[1].split('\n').filter((l) => l.trim() !== '');
  const lines = readFileSync(join(ROOT, 'test', 'types', 'public.ts'), 'utf8').split('\n');
  let at = 0;
  for (const line of expected) {
    const found = lines.indexOf(line, at);
    assert.ok(found >= 0, `test/types/public.ts lacks the README line (in order): ${line}`);
    at = found + 1;
  }
});

test('type tests fail when an internal is exported or a public name is expected missing (control)', () => {
  const dir = join(ROOT, 'dist', 'test', `type-probe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(
      join(dir, 'probe.ts'),
      [
        "import * as vggface from 'vggface';",
        "import { SqliteStore } from 'vggface';", // an internal, imported without a directive: TS2305
        'export const store = SqliteStore;',
        '// @ts-expect-error', // a public name: the directive is unused, TS2578
        'vggface.VggFace;',
        '',
      ].join('\n'),
    );
    const extended = join(ROOT, 'test', 'types', 'tsconfig.json');
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ extends: extended, files: ['probe.ts'] }));
    const r = tsc(join(dir, 'tsconfig.json'));
    assert.notEqual(r.status, 0);
    assert.match(r.output, /probe\.ts\(2,\d+\): error TS2305: Module '"vggface"' has no exported member 'SqliteStore'/);
    assert.match(r.output, /probe\.ts\(4,\d+\): error TS2578: Unused '@ts-expect-error' directive/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
