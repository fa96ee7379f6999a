/** The inference engine in a worker thread: same results as in-thread, errors carried back, no process kept alive. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { openEngineInWorker } from '../src/runtime/engine-worker.js';
import { openEngine } from '../src/runtime/onnxruntime.js';
import { ROOT, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL } from './fixtures/faces.js';

async function tinyOnnx(dir: string): Promise<string> {
  const out = join(dir, 'tiny.onnx');
  const r = await runCli(['convert', TINY_CAFFEMODEL, '-o', out]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

test(
  'a session in a worker gives the same outputs as in ' + 'this thread, and reports errors with their message',
  async (t) => {
    const model = await tinyOnnx(tempDir(t));
    const pixels = new Uint8Array(2 * 224 * 224 * 3).map((_, i) => (i * 7) & 255);
    const here = await openEngine(model);
    const there = await openEngineInWorker(model);
    t.after(() => here.close());
    assert.deepEqual(there.inputNames, ['image']);
    assert.deepEqual(there.outputNames, here.outputNames);
    const feeds = { image: { data: pixels, dims: [2, 224, 224, 3] } };
    const a = await here.run(feeds, ['descriptor', 'fc8']);
    const b = await there.run(feeds, ['descriptor', 'fc8']);
    assert.deepEqual([...b.descriptor.data], [...a.descriptor.data]);
    assert.deepEqual(b.fc8.dims, [2, 10]);
    assert.equal(pixels[1], 7, 'the caller keeps its input (copied, not transferred)');
    await assert.rejects(there.run({ image: { data: pixels, dims: [3, 224, 224, 3] } }, ['descriptor']), (e: Error) => {
      assert.equal((e as { code?: string }).code, 'E_MODEL');
      return true;
    });
    await there.close();
    await assert.rejects(there.run(feeds, ['descriptor']), /the inference engine was closed|stopped/);
    await assert.rejects(
      openEngineInWorker(join(tempDir(t), 'missing.onnx')),
      /missing\.onnx: ONNX Runtime cannot load this model/,
    );
  },
);

test('a model that is never closed does not keep the process alive', async (t) => {
  const model = await tinyOnnx(tempDir(t));
  const script = `
    import { VggFace } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'vggface.js'))};
    const m = await VggFace.load({ weights: ${JSON.stringify(model)} });
    await m.describe({ data: new Uint8Array(224 * 224 * 3), width: 224, height: 224, channels: 3 });
    console.log('described');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /described/);
});

test("workers inherit the parent's Node flags except those only an entry point understands", async () => {
  const { workerExecArgv } = await import('../src/util/worker.js');
  assert.deepEqual(
    workerExecArgv(['--max-old-space-size=4096', '--input-type=module', '-e', 'code', '--test', '--expose-gc']),
    ['--max-old-space-size=4096', '--expose-gc'],
  );
  assert.deepEqual(workerExecArgv(['--input-type', 'module', '--eval', 'x', '--test-reporter=spec']), []);
  // What Node 24 and 26's test runner passes to each test process: per-process options a worker refuses.
  assert.deepEqual(
    workerExecArgv([
      '--stack-trace-limit=100',
      '--secure-heap',
      '4096',
      '--v8-pool-size=4',
      '--no-node-snapshot',
      '--use-largepages=off',
      '--expose-gc',
    ]),
    ['--expose-gc'],
  );
});
