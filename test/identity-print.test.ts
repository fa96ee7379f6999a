/**
 * Issue 11: `convert`, `inspect` and `weights verify` print the network identity the same way (the label `identity:`
 * padded to the report's value column, then all 64 hex digits; `identity` in JSON), and for the golden tiny network
 * it is the one identity its ten layouts share. A model converted before identities says so, in every command alike.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildModel } from '../src/onnx/builder.js';
import { readerFor } from '../src/weights/formats.js';
import { NO_IDENTITY } from '../src/weights/identity.js';
import { validateTopology } from '../src/weights/topology.js';
import { TINY_IDENTITY, TINY_LAYOUTS as LAYOUTS } from './fixtures/identity.js';
import { GOLDEN_DIR, runCli, tempDir } from './helpers.js';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The lines of `text` that start with `identity:`. */
const identityLines = (text: string) => text.split('\n').filter((l) => l.trimStart().startsWith('identity:'));

test('inspect prints the identity of each of the ten golden layouts: the same one, as text and JSON', async () => {
  for (const file of LAYOUTS) {
    const path = join(GOLDEN_DIR, file);
    const [json, text] = await Promise.all([runCli(['inspect', path, '--json']), runCli(['inspect', path])]);
    assert.equal(json.code, 0, `${file}: ${json.stderr}`);
    assert.equal(JSON.parse(json.stdout).identity, TINY_IDENTITY, file);
    assert.equal(text.code, 0, `${file}: ${text.stderr}`);
    // Under "descriptor:", in its column (15: "channel order: " is the widest label).
    assert.match(
      text.stdout,
      new RegExp(`\\ndescriptor: {4}fc7, 32-d; fc8 scores 10 identities\\nidentity: {6}${TINY_IDENTITY}\\n`),
      file,
    );
    assert.deepEqual(identityLines(text.stdout), [`identity:      ${TINY_IDENTITY}`], file);
  }
});

test('convert, inspect of the model and weights verify print one identity line each, the same value', async (t) => {
  const dir = tempDir(t);
  const onnx = join(dir, 'tiny.onnx');
  const conv = await runCli(['convert', join(GOLDEN_DIR, 'vgg_face_dag.pth'), '-o', onnx]);
  assert.equal(conv.code, 0, conv.stderr);
  assert.match(
    conv.stdout,
    new RegExp(
      `^${escapeRegExp(onnx)}: pytorch \\(.*\\), 42,166 parameters, descriptor 32-d, caffe ` +
        `preprocessing, fp32, source sha256 [0-9a-f]{16}\\n  identity: ${TINY_IDENTITY}\\n$`,
    ),
  );
  const convJson = await runCli([
    'convert',
    join(GOLDEN_DIR, 'vgg_face.h5'),
    '-o',
    join(dir, 'fp16.onnx'),
    '--precision',
    'fp16',
    '--json',
  ]);
  assert.equal(convJson.code, 0, convJson.stderr);
  assert.equal(JSON.parse(convJson.stdout).identity, TINY_IDENTITY);

  const ins = await runCli(['inspect', onnx]);
  assert.equal(ins.code, 0, ins.stderr);
  assert.match(
    ins.stdout,
    new RegExp(`\\noutputs: {5}fc6, fc7_pre, fc7, fc8, descriptor\\nidentity: {4}${TINY_IDENTITY}\\n`),
  );
  const insJson = JSON.parse((await runCli(['inspect', onnx, '--json'])).stdout);
  assert.deepEqual([insJson.identity, insJson.metadata['vggface.weights.identity']], [TINY_IDENTITY, TINY_IDENTITY]);

  const ver = await runCli(['weights', 'verify', onnx, '--cache-dir', join(dir, 'cache')]);
  assert.equal(ver.code, 0, ver.stderr);
  // Each command pads the label to its own value column; the label and the value are the same.
  const lines = [conv.stdout, ins.stdout, ver.stdout].map((s) => identityLines(s).map((l) => l.trim().split(/ +/)));
  assert.deepEqual(lines, [
    [['identity:', TINY_IDENTITY]],
    [['identity:', TINY_IDENTITY]],
    [['identity:', TINY_IDENTITY]],
  ]);
});

test('a model converted before identities: inspect and weights verify say so alike, JSON identity null', async (t) => {
  const dir = tempDir(t);
  const caffe = join(GOLDEN_DIR, 'VGG_FACE.caffemodel');
  // What an older vggface wrote: the same model, no vggface.weights.identity in its metadata.
  const read = await readerFor('caffe').read(caffe, {});
  const old = join(dir, 'old.onnx');
  buildModel(read, validateTopology(read), {
    preprocessing: 'caffe',
    sourceSha256: 'f'.repeat(64),
    sourceName: 'VGG_FACE.caffemodel',
  }).writeFileAtomic(old);

  const ins = await runCli(['inspect', old]);
  assert.equal(ins.code, 0, ins.stderr);
  assert.deepEqual(identityLines(ins.stdout), [`identity:    ${NO_IDENTITY}`]);
  assert.equal(NO_IDENTITY, 'none recorded (converted before identities: convert the weights again)');
  assert.equal(JSON.parse((await runCli(['inspect', old, '--json'])).stdout).identity, null);
  const ver = await runCli(['weights', 'verify', old, '--cache-dir', join(dir, 'cache')]);
  assert.equal(ver.code, 0, ver.stderr);
  assert.deepEqual(identityLines(ver.stdout), [`identity:  ${NO_IDENTITY}`]);
  const verJson = await runCli(['weights', 'verify', old, '--cache-dir', join(dir, 'cache'), '--json']);
  assert.equal(JSON.parse(verJson.stdout).identity, null);
});
