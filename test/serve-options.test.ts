/**
 * `startServer` (vggface/server) checks its options as `vggface serve` checks its flags, with the same ranges
 * (SERVE_OPTIONS): a bad option is a usage error that names it, and nothing starts (no port listening, no
 * gallery created).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { SERVE_DEFAULTS, startServer, type ServeOptions } from '../src/server/server.js';
import { freePort, runCli, tempDir } from './helpers.js';
import { TINY_CAFFEMODEL, YUNET_MODEL } from './fixtures/faces.js';

/** Whether something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function baseOptions(t: { after(fn: () => void): void }): Promise<ServeOptions> {
  return {
    ...SERVE_DEFAULTS,
    port: await freePort(),
    threadsPerWorker: 1,
    load: { weights: TINY_CAFFEMODEL, cacheDir: tempDir(t) },
    detectorModel: YUNET_MODEL,
    db: join(tempDir(t), 'gallery.db'),
    auth: 'none',
    logLevel: 'silent',
  };
}

/** [what is changed, the message]; values a TypeScript caller could not pass are what JavaScript callers send. */
const BAD: readonly [Record<string, unknown>, string | RegExp][] = [
  // Ranges, as the flags have them.
  [{ port: 65536 }, 'Expected an integer between 0 and 65535 for port but received number 65536'],
  [{ port: -1 }, 'Expected an integer between 0 and 65535 for port but received number -1'],
  [{ workers: 0 }, 'Expected an integer between 1 and 64 for workers but received number 0'],
  [{ workers: 65 }, 'Expected an integer between 1 and 64 for workers but received number 65'],
  [{ threadsPerWorker: 1025 }, 'Expected an integer between 1 and 1024 for threadsPerWorker but received number 1025'],
  [{ batchSize: 257 }, 'Expected an integer between 1 and 256 for batchSize but received number 257'],
  [{ queueSize: -1 }, 'Expected an integer between 0 and 100000 for queueSize but received number -1'],
  [{ maxBodyBytes: 1023 }, 'Expected an integer between 1024 and 2147483648 for maxBodyBytes but received number 1023'],
  [
    { maxJsonBytes: 2 ** 31 + 1 },
    'Expected an integer between 1024 and 2147483648 for maxJsonBytes but received number 2147483649',
  ],
  [{ maxImages: 1001 }, 'Expected an integer between 1 and 1000 for maxImages but received number 1001'],
  [{ maxPixels: 0 }, 'Expected an integer between 1 and 9007199254740991 for maxPixels but received number 0'],
  [{ timeoutMs: 0 }, 'Expected an integer between 1 and 3600000 for timeoutMs but received number 0'],
  [{ timeoutMs: 3_600_001 }, 'Expected an integer between 1 and 3600000 for timeoutMs but received number 3600001'],
  [{ candidates: 0 }, 'Expected an integer between 1 and 1000 for candidates but received number 0'],
  [
    { threshold: -0.1 },
    'Expected a number between 0 and 1.7976931348623157e+308 for threshold but received number -0.1',
  ],
  // Types.
  [{ port: 80.5 }, 'Expected an integer between 0 and 65535 for port but received number 80.5'],
  [{ workers: '2 workers' }, 'Expected an integer between 1 and 64 for workers but received "2 workers"'],
  [{ timeoutMs: Number.NaN }, 'Expected an integer between 1 and 3600000 for timeoutMs but received number NaN'],
  [{ host: '' }, 'Expected a non-empty string for host but received ""'],
  [{ host: 8080 }, 'Expected a non-empty string for host but received number 8080'],
  [{ db: undefined }, 'Expected a non-empty string for db but received undefined'],
  [{ approximate: 'yes' }, 'Expected a boolean for approximate but received "yes"'],
  [{ load: undefined }, 'Expected an object of load options for load but received undefined'],
  [{ allowedHosts: 'proxy.example' }, 'Expected an array of host names for allowedHosts but received "proxy.example"'],
  [{ allowedHosts: ['ok.example', ''] }, 'Expected a non-empty string for allowedHosts[1] but received ""'],
  [{ token: 42 }, 'Expected a string for token but received number 42'],
  // One of.
  [{ auth: 'some' }, 'Expected one of writes, all, none for auth but received "some"'],
  [{ metric: 'l1' }, 'Expected one of cosine, euclidean, euclidean_l2, angular for metric but received "l1"'],
  [{ storage: 'int8' }, 'Expected one of fp32, fp16 for storage but received "int8"'],
  [
    { logLevel: 'loud' },
    'Expected one of fatal, error, warn, info, debug, trace, silent for logLevel but received "loud"',
  ],
  // Auth without a token (checked before, kept).
  [{ auth: 'writes' }, 'auth writes needs a token (or auth none to serve without one)'],
  [{ auth: 'all', token: 'two words' }, /^token: the token contains whitespace or a control character/],
];

test('startServer refuses bad options with a usage error that names the option, before anything starts', async (t) => {
  const base = await baseOptions(t);
  for (const [change, message] of BAD) {
    const options = { ...base, ...change } as unknown as ServeOptions;
    await assert.rejects(
      startServer(options, () => {}),
      { name: 'VggFaceError', code: 'E_USAGE', message },
      JSON.stringify(change),
    );
    assert.equal(await listening(base.port), false, `${JSON.stringify(change)}: nothing listens`);
    assert.equal(existsSync(base.db), false, `${JSON.stringify(change)}: no gallery was created`);
  }
  await assert.rejects(startServer(null as unknown as ServeOptions), {
    code: 'E_USAGE',
    message: 'Expected an object for options but received null',
  });
});

test('the CLI refuses the same values, naming its flags', async () => {
  const cases: [string[], string][] = [
    [['--port=65536'], 'Expected an integer between 0 and 65535 for --port but received "65536"'],
    [['--workers=65'], 'Expected an integer between 1 and 64 for --workers but received "65"'],
    [['--batch=257'], 'Expected an integer between 1 and 256 for --batch but received "257"'],
    [['--queue=-1'], 'Expected an integer between 0 and 100000 for --queue but received "-1"'],
    [['--max-images=1001'], 'Expected an integer between 1 and 1000 for --max-images but received "1001"'],
    [['--timeout=3600.5'], 'Expected a number between 0.001 and 3600 for --timeout but received "3600.5"'],
    [['--candidates=0'], 'Expected an integer between 1 and 1000 for --candidates but received "0"'],
    [['--auth=some'], 'Expected one of writes, all, none for --auth but received "some"'],
    [
      ['--log-level=loud'],
      'Expected one of fatal, error, warn, info, debug, trace, silent for --log-level but received "loud"',
    ],
    [['--max-body=1023'], 'Expected a size between 1 KiB and 2 GiB for --max-body but received "1023"'],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(['serve', '-w', TINY_CAFFEMODEL, ...args], {
      env: { VGGFACE_TOKEN: 'token-0123', VGGFACE_DETECTOR_MODEL: YUNET_MODEL },
    });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n')[0], `vggface: ${message}`);
  }
});

test('startServer starts with the base options (optional ones left out, port as a numeric string)', async (t) => {
  const base = await baseOptions(t);
  const server = await startServer({ ...base, port: String(base.port) as unknown as number }, () => {});
  t.after(() => server.close());
  assert.equal(server.url, `http://127.0.0.1:${base.port}`);
  assert.equal(await listening(base.port), true);
  const health = await fetch(`${server.url}/healthz`);
  assert.equal(health.status, 200);
  await server.close();
  assert.equal(await listening(base.port), false);
});
