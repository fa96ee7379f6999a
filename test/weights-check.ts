/** Checks shared by the reader tests: golden numbers through the library and the CLI, inspect's report, CLI errors. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VggFaceError } from '../src/errors.js';
import { readWeights } from '../src/weights/formats.js';
import type { FormatId, ReadOptions } from '../src/weights/types.js';
import { VggFace } from '../src/vggface.js';
import { assertClose, golden, GOLDEN_DIR, GOLDEN_IMAGES, jsonLines, runCli, tempDir } from './helpers.js';

type TestContext = { after(fn: () => void | Promise<void>): void };

const images = () => GOLDEN_IMAGES.map((f) => join(GOLDEN_DIR, f));

/** The library reproduces golden fc6, fc7, fc8 (raw) and fc7_l2 from `weights` on the four PNGs. */
export async function assertGoldenLibrary(t: TestContext, weights: string): Promise<void> {
  const model = await VggFace.load({ weights, cacheDir: tempDir(t) });
  t.after(() => model.close());
  const paths = images();
  const fc6 = await model.describe(paths, { layer: 'fc6', normalize: false });
  const fc7 = await model.describe(paths, { layer: 'fc7', normalize: false });
  const fc8 = await model.describe(paths, { layer: 'fc8', normalize: false });
  const l2 = await model.describe(paths);
  GOLDEN_IMAGES.forEach((img, i) => {
    const g = golden.images[img];
    assertClose(fc6[i], g.fc6, 1e-4, `${img} fc6`);
    assertClose(fc7[i], g.fc7, 1e-4, `${img} fc7`);
    assertClose(fc8[i], g.fc8, 1e-4, `${img} fc8`);
    assertClose(l2[i], g.fc7_l2, 1e-4, `${img} fc7_l2`);
  });
}

/** `vggface describe --detector none --weights FILE` on the four PNGs (face crops already) prints golden fc7_l2. */
export async function assertGoldenCli(t: TestContext, weights: string): Promise<void> {
  const paths = images();
  const res = await runCli(['describe', '--detector', 'none', '--weights', weights, ...paths], {
    env: { VGGFACE_CACHE: tempDir(t) },
  });
  assert.equal(res.code, 0, res.stderr);
  const lines = jsonLines<{ image: string; descriptor: number[] }>(res.stdout);
  assert.deepEqual(
    lines.map((l) => l.image),
    paths,
  );
  lines.forEach((l, i) =>
    assertClose(l.descriptor, golden.images[GOLDEN_IMAGES[i]].fc7_l2, 1e-4, `${GOLDEN_IMAGES[i]} via CLI`),
  );
}

/** `vggface inspect --json FILE` (detection by content) reports this format, layout and channel order. */
export async function assertInspect(
  file: string,
  format: string,
  layout: RegExp,
  channelOrder: 'RGB' | 'BGR',
  dtype = 'float32',
): Promise<void> {
  const res = await runCli(['inspect', '--json', file]);
  assert.equal(res.code, 0, res.stderr);
  const report = JSON.parse(res.stdout) as {
    format: string;
    layout: string;
    inputChannelOrder: string;
    dtype: string;
    layers: { name: string }[];
  };
  assert.equal(report.format, format);
  assert.match(report.layout, layout);
  assert.equal(report.inputChannelOrder, channelOrder);
  assert.equal(report.dtype, dtype);
  assert.equal(report.layers.length, 16);
  const text = await runCli(['inspect', file]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`format: +${format} \\(`));
  assert.match(text.stdout, new RegExp(`channel order: ${channelOrder} \\(what conv1_1 expects\\)`));
}

/** Runs the CLI and expects a failure with this exit code and message, and no stack trace. */
export async function expectCliError(
  args: string[],
  code: number,
  pattern: RegExp,
  env: Record<string, string> = {},
): Promise<string> {
  const r = await runCli(args, { env });
  assert.equal(r.code, code, `exit code for ${args.join(' ')}: stderr ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.doesNotMatch(r.stderr, /HDF5-DIAG/, 'no HDF5 library noise');
  return r.stderr;
}

/**
 * Reads `bytes` as `format` (forced, so detection is not what is tested) and returns the VggFaceError it raises,
 * checking that the message starts with the file's path.
 */
export async function readError(
  t: TestContext,
  bytes: Uint8Array,
  format: FormatId,
  fileName: string,
  options: ReadOptions = {},
  namesFile = true,
): Promise<VggFaceError> {
  const path = join(tempDir(t), fileName);
  writeFileSync(path, bytes);
  const err = await readWeights(path, format, options).then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof VggFaceError, String(err));
  if (namesFile) assert.ok(err.message.startsWith(`${path}: `), `message names the file: ${err.message}`);
  return err;
}
