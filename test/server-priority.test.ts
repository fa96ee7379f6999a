/**
 * The server process gives its event loop priority: every other thread is lowered to nice 10 (Linux), or left where
 * it is when the process already runs at 10 or lower priority (as under `nice -n 19`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BACKGROUND_NICE } from '../src/server/priority.js';
import { ROOT } from './helpers.js';

test('prioritizeEventLoop lowers every thread but the main one, including threads started later by them', {
  skip: !existsSync('/proc/self/task') && 'needs Linux /proc',
}, (t) => {
  const script = `
    import { readdirSync, readFileSync } from 'node:fs';
    import { getPriority } from 'node:os';
    import { Worker } from 'node:worker_threads';
    import { prioritizeEventLoop } from ${JSON.stringify(join(ROOT, 'dist', 'src', 'server', 'priority.js'))};
    const w = new Worker(
      'const { parentPort } = require("node:worker_threads");' +
        ' parentPort.on("message", () => {' +
        ' new (require("node:worker_threads").Worker)("setTimeout(() => {}, 500)", { eval: true, execArgv: [] });' +
        ' parentPort.postMessage("spawned");' +
        ' });',
      { eval: true, execArgv: [] },
    );
    await new Promise((r) => w.once('online', r));
    const start = getPriority();
    const lowered = prioritizeEventLoop();
    w.postMessage('go');
    await new Promise((r) => w.once('message', r));
    await new Promise((r) => setTimeout(r, 100));
    const nice = readdirSync('/proc/self/task').map((t) => [Number(t), getPriority(Number(t))]);
    console.log(JSON.stringify({ pid: process.pid, start, lowered, nice }));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { pid, start, lowered, nice } = JSON.parse(r.stdout) as {
    pid: number;
    start: number;
    lowered: number;
    nice: [number, number][];
  };
  // The child inherits the runner's nice value: the main thread keeps it, the others go to 10 unless already lower.
  const background = Math.max(start, BACKGROUND_NICE);
  if (background === start) t.diagnostic(`started at nice ${start}: lowering to ${BACKGROUND_NICE} changes nothing`);
  assert.ok(lowered >= 2, `lowered ${lowered} threads`);
  for (const [tid, n] of nice)
    assert.equal(n, tid === pid ? start : background, `thread ${tid}${tid === pid ? ' (main)' : ''} at nice ${n}`);
  assert.ok(nice.length > lowered, `the nested worker started afterwards is there, and inherited nice ${background}`);
});
