/**
 * ONNX Runtime's telemetry stays off. Since 1.29 ONNX Runtime on Linux writes a usage database and a device id under
 * `~/.cache/Microsoft/DeveloperTools/.onnxruntime/` and `$TMPDIR/mat-debug-<pid>.log`, and uploads, unless
 * ORT_DISABLE_TELEMETRY is set before it loads (src/runtime/no-telemetry.ts). The CLI's `describe`,
 * `convert --precision int8` and `serve` (with requests through both kinds of worker thread) each run in a child
 * process with its own HOME and TMPDIR, in a fresh network namespace (`unshare -n`: loopback only), under
 * `strace -ff -e trace=connect`: no such file may appear, and no connect() to anything but a Unix socket.
 *
 * ONNX Runtime collects nothing when CI (or another build-pipeline variable) is set, so the children run without
 * them, else this would pass whatever the code does. A control run of bare onnxruntime-node in the same sandbox
 * must show the files and a traced connect(), so the checks can see what they look for.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, ROOT, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';
import { photo } from './fixtures/serve.js';

/**
 * Variables under which ONNX Runtime 1.30 suppresses its telemetry by itself (strings of libonnxruntime.so), and the
 * opt-out.
 */
const SUPPRESSING = [
  'CI',
  'TF_BUILD',
  'GITHUB_ACTIONS',
  'GITLAB_CI',
  'JENKINS_URL',
  'APPVEYOR',
  'BUILDKITE',
  'CIRCLECI',
  'CODEBUILD_BUILD_ID',
  'TEAMCITY_VERSION',
  'TRAVIS',
  'ORT_RUNNING_UNIT_TESTS',
  'ORT_DISABLE_TELEMETRY',
];
const TOKEN = 'telemetry-test-token';
const isRoot = process.getuid?.() === 0;
/** How long the server runs, from its start, before it is stopped. */
const HOLD_MS = 16_000;

interface Sandbox {
  readonly home: string;
  readonly tmp: string;
  readonly traces: string;
  readonly env: NodeJS.ProcessEnv;
  /** /tmp's mat-debug files before the run. */
  readonly tmpBefore: ReadonlySet<string>;
}

function sandbox(t: { after(fn: () => void): void }): Sandbox {
  const dir = tempDir(t, 'vggface-telemetry-');
  const home = join(dir, 'home');
  const tmp = join(dir, 'tmp');
  const traces = join(dir, 'traces');
  for (const d of [home, tmp, traces]) mkdirSync(d);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: tmp, VGGFACE_TOKEN: TOKEN };
  for (const name of [
    ...SUPPRESSING,
    'XDG_CACHE_HOME',
    'VGGFACE_CACHE',
    'VGGFACE_GALLERY',
    'VGGFACE_DETECTOR_MODEL',
    'VGGFACE_WEIGHTS',
  ])
    delete env[name];
  return { home, tmp, traces, env, tmpBefore: new Set(matDebug('/tmp')) };
}

const matDebug = (dir: string): string[] => readdirSync(dir).filter((f) => f.startsWith('mat-debug-'));

/**
 * `argv` in a new network namespace with loopback up, every thread's connect() calls traced to sb.traces/trace.<tid>.
 */
function sandboxed(sb: Sandbox, argv: readonly string[]): { command: string; args: string[] } {
  const traced = ['strace', '-ff', '-q', '-e', 'trace=connect', '-o', join(sb.traces, 'trace'), ...argv];
  return {
    command: 'unshare',
    args: [isRoot ? '-n' : '-rn', '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...traced],
  };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(sb: Sandbox, argv: readonly string[]): Promise<Run> {
  const { command, args } = sandboxed(sb, argv);
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: sb.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The threads and processes strace saw, and every connect() they made. */
function traced(sb: Sandbox): { tids: number[]; connects: string[] } {
  const files = readdirSync(sb.traces).filter((f) => /^trace\.\d+$/.test(f));
  const connects: string[] = [];
  for (const f of files)
    for (const line of readFileSync(join(sb.traces, f), 'utf8').split('\n'))
      if (line.startsWith('connect(')) connects.push(`${f}: ${line}`);
  return { tids: files.map((f) => Number(f.slice('trace.'.length))), connects };
}

/**
 * Everything ONNX Runtime's telemetry leaves behind: its folder under HOME, mat-debug logs and the 1DS session file.
 */
function telemetryTraces(sb: Sandbox, tids: readonly number[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(sb.home, { recursive: true }).map(String)) {
    if (/(^|\/)(Microsoft|\.onnxruntime|onnxruntime\.db|deviceid)(\/|$)/.test(entry)) found.push(`HOME/${entry}`);
  }
  for (const entry of readdirSync(sb.tmp))
    if (entry.startsWith('mat-debug-') || entry === '.ses') found.push(`TMPDIR/${entry}`);
  const ours = new Set(tids.map((tid) => `mat-debug-${tid}.log`));
  for (const entry of matDebug('/tmp')) if (!sb.tmpBefore.has(entry) && ours.has(entry)) found.push(`/tmp/${entry}`);
  return found;
}

function assertNoTelemetry(sb: Sandbox, what: string): void {
  const { tids, connects } = traced(sb);
  assert.ok(tids.length > 1, `${what}: strace saw no threads (${tids.length})`);
  const left = {
    files: telemetryTraces(sb, tids),
    connections: connects.filter((c) => !c.includes('sa_family=AF_UNIX')),
  };
  assert.deepEqual(left, { files: [], connections: [] }, `${what}: ONNX Runtime's telemetry wrote files or connected`);
}

function tools(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces and strace are Linux-only';
  const missing = ['unshare', 'strace', 'ip', 'nsenter'].filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  return missing.length
    ? `missing ${missing.join(', ')} (apt-get install strace iproute2 util-linux; .ci/run does)`
    : undefined;
}

test('ONNX Runtime telemetry is off: no files, no connections, for describe, convert --precision int8 and serve', {
  timeout: 300_000,
}, async (t) => {
  const absent = tools();
  if (process.platform !== 'linux') return t.skip(absent);
  assert.equal(absent, undefined, absent);

  await t.test(
    'control: bare onnxruntime-node in the same sandbox writes the files, and a connect() is seen',
    async (t) => {
      const sb = sandbox(t);
      const script = `import * as ort from 'onnxruntime-node'; import net from 'node:net';
      const s = await ort.InferenceSession.create(${JSON.stringify(YUNET_MODEL)}); await s.release();
      await new Promise((done) => net.connect(80, '192.0.2.1').on('error', done).on('connect', done));`;
      const r = await run(sb, [process.execPath, '--input-type=module', '-e', script]);
      assert.equal(r.code, 0, r.stderr);
      const { tids, connects } = traced(sb);
      const found = telemetryTraces(sb, tids);
      assert.ok(
        found.some((f) => f.endsWith('onnxruntime.db')),
        `no onnxruntime.db: telemetry suppressed by the environment? ${found}`,
      );
      assert.ok(
        found.some((f) => /mat-debug-\d+\.log$/.test(f)),
        `no mat-debug log: ${found}`,
      );
      assert.ok(
        connects.some((c) => c.includes('192.0.2.1')),
        `strace did not see the connect(): ${connects}`,
      );
    },
  );

  await t.test('describe', async (t) => {
    const sb = sandbox(t);
    const r = await run(sb, [
      process.execPath,
      CLI,
      'describe',
      '-w',
      TINY_CAFFEMODEL,
      '--detector-model',
      YUNET_MODEL,
      photo('img1.jpg'),
      photo('couple.jpg'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { descriptor?: number[] });
    assert.equal(lines.length, 3, r.stdout);
    assert.ok(
      lines.every((l) => (l.descriptor?.length ?? 0) > 0),
      r.stdout,
    );
    assertNoTelemetry(sb, 'describe');
  });

  await t.test('convert --precision int8', async (t) => {
    const sb = sandbox(t);
    const out = join(sb.home, 'tiny-int8.onnx');
    const r = await run(sb, [process.execPath, CLI, 'convert', TINY_CAFFEMODEL, '-o', out, '--precision', 'int8']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(out), r.stderr);
    assertNoTelemetry(sb, 'convert --precision int8');
  });

  await t.test('serve, with describe, gallery add and search requests', async (t) => {
    const sb = sandbox(t);
    const argv = [
      process.execPath,
      CLI,
      'serve',
      '--port',
      '0',
      '-w',
      TINY_CAFFEMODEL,
      '--detector-model',
      YUNET_MODEL,
      '--db',
      join(sb.home, 'gallery.db'),
      '--threshold',
      '0.3',
    ];
    const { command, args } = sandboxed(sb, argv);
    const started = Date.now();
    const child = spawn(command, args, { cwd: ROOT, env: sb.env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The server is strace's only child; killing strace would leave it running, untraced.
    const serverPid = (): number | undefined => {
      try {
        return (
          Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]) ||
          undefined
        );
      } catch {
        return undefined;
      }
    };
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const server = serverPid();
        if (server) process.kill(server, 'SIGKILL');
        else child.kill('SIGKILL');
        await exited;
      }
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start within 120 s:\n${stderr}`)), 120_000);
      child.stderr.on('data', () => {
        const m = /listening on (http:\/\/\S+) /.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      void exited.then((code) => reject(new Error(`serve exited with ${code} before listening:\n${stderr}`)));
    });

    // The client runs in the server's network namespace (the only place its loopback is reachable), not traced.
    const client = `const [url, token, a, b] = process.argv.slice(1);
      const fs = await import('node:fs');
      const form = (...files) => {
        const f = new FormData();
        for (const p of files) f.append('images', new Blob([fs.readFileSync(p)]), p.split('/').pop());
        return f;
      };
      const out = [];
      for (const [method, path, body, auth] of [
        ['POST', '/v1/describe', form(a, b)],
        ['POST', '/v1/gallery/someone/faces', form(a), true],
        ['POST', '/v1/search', form(b)],
        ['GET', '/healthz'],
      ]) {
        const res = await fetch(url + path, {
          method,
          body,
          headers: auth ? { authorization: 'Bearer ' + token } : {},
        });
        out.push({ path, status: res.status, body: await res.json() });
      }
      console.log(JSON.stringify(out));`;
    const pid = child.pid!;
    const ns = isRoot
      ? [`--net=/proc/${pid}/ns/net`]
      : [`--user=/proc/${pid}/ns/user`, `--net=/proc/${pid}/ns/net`, '--preserve-credentials'];
    const c = spawnSync(
      'nsenter',
      [...ns, process.execPath, '--input-type=module', '-e', client, url, TOKEN, photo('img1.jpg'), photo('img2.jpg')],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(c.status, 0, `${c.stderr}\n${stderr}`);
    // biome-ignore lint/suspicious/noExplicitAny: JSON answers of any shape, checked field by field
    const answers = JSON.parse(c.stdout) as { path: string; status: number; body: Record<string, any> }[];
    for (const a of answers) assert.equal(a.status, 200, `${a.path}: ${JSON.stringify(a.body)}`);
    assert.ok(answers[0].body.images[0].faces[0].descriptor.length > 0, JSON.stringify(answers[0].body));
    assert.equal(answers[2].body.results[0].matches[0].identity, 'someone');

    // Without the opt-out, ONNX Runtime's uploader first looks its endpoint up (DNS: connect() to port 53) about 9 s
    // after it initialises, then again 5, 9 and 19 s later: keep the server up long enough for that to be seen.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, HOLD_MS - (Date.now() - started))));
    // Stop the server gracefully: SIGTERM to node.
    const server = serverPid();
    assert.ok(server, 'the server process under strace');
    process.kill(server, 'SIGTERM');
    assert.equal(await exited, 0, stderr);
    assertNoTelemetry(sb, 'serve');
    assert.ok(traced(sb).tids.length > 4, 'the server and its worker threads were traced');
  });
});
