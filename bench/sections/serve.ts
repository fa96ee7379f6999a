/**
 * Issue 7: `vggface serve` under load on loopback: 16 connections posting the photos of ../shared/data/faces one
 * per request (POST /v1/describe, every face) for 30 s against the full-size model, beside the batch rate of
 * `describeFaces` (what `vggface describe` runs, batches of 8) on the same photos in the same run; latency,
 * errors, /healthz latency idle and with the workers saturated, the inference batch sizes the server formed, and its
 * peak RSS.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mb, ROOT, runTask, WORK_DIR, type Section } from '../harness.js';
import { ensureFullCaffemodel } from '../fixtures.js';

const FACES_DIR = join(ROOT, '..', 'shared', 'data', 'faces');
const DETECTOR =
  process.env.VGGFACE_DETECTOR_MODEL || join(ROOT, '..', 'shared', 'models', 'face_detection_yunet_2023mar.onnx');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const CONNECTIONS = 16;
/** Time between /healthz probes, from this process (its event loop otherwise idle: the load runs in a task). */
const PROBE_GAP_MS = 50;
const IDLE_PROBES = 40;

interface Load {
  seconds: number;
  ok: number;
  statusCodes: Record<string, { count?: number }>;
  errors: number;
  timeouts: number;
  latency: { p50: number; p99: number; max: number };
  health: { probes: number; p50: number; p99: number; max: number };
}
interface DescribeRate {
  photos: number;
  faces: number;
  photosPerSecond: number;
  facesPerSecond: number;
}

/** The samples of a Prometheus text page, by series. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m && !line.startsWith('#')) out.set(m[1], Number(m[2]));
  }
  return out;
}

interface Probe {
  readonly ms: number;
  /** The server said it had images queued or in flight. */
  readonly busy: boolean;
}

/** Times GET /healthz, one probe at a time, PROBE_GAP_MS apart, while `more(probes so far)` says so. */
async function probeHealth(url: string, more: (done: number) => boolean): Promise<Probe[]> {
  const probes: Probe[] = [];
  while (more(probes.length)) {
    const t = performance.now();
    const res = await fetch(`${url}/healthz`);
    const body = (await res.json()) as { queue: { waiting: number }; inflightImages: number };
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(`/healthz answered ${res.status}: ${JSON.stringify(body)}`);
    probes.push({ ms, busy: body.queue.waiting > 0 || body.inflightImages > 0 });
    await new Promise((r) => setTimeout(r, PROBE_GAP_MS));
  }
  return probes;
}

/** "p50 / p90 / max" of some milliseconds. */
function spread(ms: readonly number[]): string {
  if (ms.length === 0) return 'n/a';
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return `${at(0.5).toFixed(1)} / ${at(0.9).toFixed(1)} / ${s[s.length - 1].toFixed(1)} ms`;
}

interface Server {
  url: string;
  pid: number;
  stop(): Promise<number | null>;
  stderr(): string;
}

function startServer(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--auth', 'none', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (http:\/\/\S+) /.exec(stderr);
      if (m) resolve({ url: m[1], pid: child.pid!, stop: () => (child.kill('SIGTERM'), exited), stderr: () => stderr });
    });
    void exited.then((code) => reject(new Error(`vggface serve exited with ${code}:\n${stderr}`)));
  });
}

/** Wall time of one `vggface describe` run (load included), its output discarded. */
function cliSeconds(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(process.execPath, [CLI, 'describe', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) =>
      code === 0
        ? resolve((performance.now() - start) / 1000)
        : reject(new Error(`vggface describe exited with ${code}: ${stderr}`)),
    );
  });
}

/**
 * Photos/s of the CLI itself (JSON output included), load excluded: the same command on all the photos and on
 * the first alone, the difference of their times over the difference of their counts; median of the rounds.
 */
async function cliRate(common: string[], photos: readonly string[], rounds: number): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const one = await cliSeconds([...common, photos[0]]);
    const all = await cliSeconds([...common, ...photos]);
    rates.push((photos.length - 1) / (all - one));
  }
  return rates.sort((a, b) => a - b)[rates.length >> 1];
}

/** Peak resident memory of a process (Linux), from /proc. */
function peakRss(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export const serveSection: Section = {
  name: 'serve',
  title: 'HTTP server under load: vggface serve, full-size model (fp32)',
  async run(ctx) {
    const seconds = ctx.quick ? 8 : 30;
    const limit = ctx.quick ? 16 : 64;
    const weights = await ensureFullCaffemodel();
    // The faces section's conversion cache: this measures serving, not conversion.
    const cacheDir = join(WORK_DIR, 'faces-cache');
    mkdirSync(cacheDir, { recursive: true });
    const photos = readdirSync(FACES_DIR)
      .filter((f) => f.endsWith('.jpg'))
      .sort()
      .slice(0, limit)
      .map((f) => join(FACES_DIR, f));

    const rounds = ctx.quick ? 1 : 3;
    ctx.log(`batch rate: vggface describe on the same ${photos.length} photos`);
    const cli = await cliRate(['-w', weights, '--cache-dir', cacheDir, '--detector-model', DETECTOR], photos, rounds);
    ctx.log(`batch rate: describeFaces on the same ${photos.length} photos`);
    const batch = await runTask<DescribeRate>('faces-describe', {
      dir: FACES_DIR,
      weights,
      cacheDir,
      detectorModel: DETECTOR,
      rounds,
      limit,
    });

    const dbDir = mkdtempSync(join(WORK_DIR, 'serve-'));
    ctx.log('starting vggface serve');
    const server = await startServer([
      '-w',
      weights,
      '--cache-dir',
      cacheDir,
      '--detector-model',
      DETECTOR,
      '--db',
      join(dbDir, 'gallery.db'),
    ]);
    let exitCode: number | null = null;
    let load: Load;
    let idle: Probe[];
    let underLoad: Probe[];
    let before: Map<string, number>;
    let after: Map<string, number>;
    let rss: number | undefined;
    try {
      // Warm-up: every photo once, one at a time (first runs of ONNX Runtime sessions are slower).
      for (const p of photos.slice(0, 4)) {
        const body = new FormData();
        body.append('images', new Blob([readFileSync(p)]), p);
        const res = await fetch(`${server.url}/v1/describe`, { method: 'POST', body });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`warm-up: ${res.status} ${text}`);
      }
      ctx.log(`/healthz on the idle server: ${IDLE_PROBES} probes`);
      idle = await probeHealth(server.url, (done) => done < IDLE_PROBES);
      before = await scrape(server.url);
      ctx.log(`load: ${CONNECTIONS} connections for ${seconds} s`);
      let loading = true;
      const [task, probes] = await Promise.all([
        runTask<Load>('serve-load', { url: server.url, photos, connections: CONNECTIONS, seconds }).finally(
          () => (loading = false),
        ),
        probeHealth(server.url, () => loading),
      ]);
      load = task.result;
      underLoad = probes;
      after = await scrape(server.url);
      rss = peakRss(server.pid);
    } finally {
      exitCode = await server.stop();
      rmSync(dbDir, { recursive: true, force: true });
    }
    if (exitCode !== 0) ctx.log(`vggface serve exited with ${exitCode}:\n${server.stderr()}`);
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    const saturated = underLoad.filter((p) => p.busy);
    const faces = delta('vggface_faces_described_total');
    const batches = delta('vggface_inference_batch_size_count');
    const served = load.ok / load.seconds;
    const codes = Object.entries(load.statusCodes)
      .map(([code, s]) => `${code}: ${s.count ?? 0}`)
      .join(', ');
    const refused = load.statusCodes['503']?.count ?? 0;
    const otherErrors =
      load.errors +
      Object.entries(load.statusCodes)
        .filter(([c]) => c !== '200' && c !== '503')
        .reduce((s, [, v]) => s + (v.count ?? 0), 0);
    return [
      `${CONNECTIONS} connections on loopback (autocannon), each posting one photo per ` +
        'request to `POST /v1/describe` (multipart, every face described), ' +
        `the ${photos.length} JPEGs of \`../shared/data/faces\` in turn, for ${load.seconds.toFixed(0)} s; ` +
        'server defaults (1 inference worker using every core, batch 8, queue 32), ' +
        'random weights of the real size. Batch rates on the same photos in the same run: the CLI, ' +
        '`vggface describe PHOTOS > /dev/null` (decode + detect + align + fc7 in ' +
        'batches of 8, JSON lines written), its load time taken out by timing it on the first ' +
        "photo alone; and the library's `describeFaces` with the model loaded " +
        `(no JSON). Medians of ${rounds} round(s).`,
      '',
      '| measurement | value |',
      '| --- | --- |',
      `| server: photos/s (2xx answers / duration) | ${served.toFixed(2)} |`,
      `| server: faces/s | ${(faces / load.seconds).toFixed(2)} |`,
      `| CLI batch rate (vggface describe): photos/s | ${cli.toFixed(2)} |`,
      `| server / CLI batch rate | ${(served / cli).toFixed(3)} |`,
      '| library batch rate (describeFaces, no JSON): photos/s, faces/s ' +
        `| ${batch.result.photosPerSecond.toFixed(2)}, ${batch.result.facesPerSecond.toFixed(2)} |`,
      `| server / library batch rate | ${(served / batch.result.photosPerSecond).toFixed(3)} |`,
      `| latency p50 / p99 / max | ${load.latency.p50} / ${load.latency.p99} / ${load.latency.max} ms |`,
      `| answers by status | ${codes || 'none'} |`,
      '| errors other than deliberate 503s (socket errors, timeouts, other ' +
        `statuses) | ${otherErrors} (503s: ${refused}) |`,
      `| /healthz, idle server: p50 / p90 / max (${idle.length} ` +
        `probes, ${PROBE_GAP_MS} ms apart) | ${spread(idle.map((p) => p.ms))} |`,
      `| /healthz, workers saturated: p50 / p90 / max (the ${saturated.length} of ${underLoad.length} probes during ` +
        `the load that found images queued or in flight) | ${spread(saturated.map((p) => p.ms))} |`,
      `| /healthz from the load generator's process: p50 / p99 / max (${load.health.probes} probes, every 250 ms) ` +
        `| ${load.health.p50.toFixed(1)} / ${load.health.p99.toFixed(1)} / ${load.health.max.toFixed(1)} ms |`,
      `| inference calls, mean faces per call | ${batches}, ${(faces / Math.max(1, batches)).toFixed(2)} |`,
      `| server peak RSS (model, detector, gallery, HTTP) | ${rss === undefined ? 'n/a' : mb(rss)} |`,
      `| exit code after SIGTERM | ${exitCode} |`,
    ].join('\n');
  },
};
