/**
 * Helpers of the queue tests: a real PostgreSQL (the one CI starts, $VGGFACE_TEST_PG_URL, or one started here with
 * ../shared/scripts/pg-test-server), a database per test, and CLI processes (workers) watched line by line.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, CLI, FACES_DIR, ROOT, SHARED } from './helpers.js';

const SCRIPT = join(SHARED, 'scripts', 'pg-test-server');

/** A PostgreSQL server this process started (and stops): needed where a test restarts it. */
export class OwnServer {
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly url: string,
  ) {}

  static async start(): Promise<OwnServer> {
    const port = await freePort();
    const dir = `/tmp/vggface-pg-queue-test-${process.pid}-${randomBytes(3).toString('hex')}`;
    const url = execFileSync(SCRIPT, ['start', String(port), dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    return new OwnServer(port, dir, url);
  }

  stopServer(): void {
    execFileSync(SCRIPT, ['stop', this.dir], { stdio: 'ignore' });
  }

  startServer(): void {
    execFileSync(SCRIPT, ['start', String(this.port), this.dir], { stdio: 'ignore' });
  }

  /** Stops the server and removes its cluster. */
  destroy(): void {
    try {
      this.stopServer();
    } finally {
      execFileSync('rm', ['-rf', this.dir]);
    }
  }
}

let shared: Promise<{ url: string; own?: OwnServer }> | undefined;

/** The server the tests use: $VGGFACE_TEST_PG_URL when CI set it, else one started for this test file. */
export function testServer(): Promise<{ url: string; own?: OwnServer }> {
  shared ??= (async () => {
    if (process.env.VGGFACE_TEST_PG_URL) return { url: process.env.VGGFACE_TEST_PG_URL };
    const own = await OwnServer.start();
    return { url: own.url, own };
  })();
  return shared;
}

export async function stopTestServer(): Promise<void> {
  if (!shared) return;
  const s = await shared;
  s.own?.destroy();
}

/** A fresh database on `serverUrl`; returns its URL and a function that drops it. */
export async function newDatabase(serverUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `vggface_queue_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A CLI process whose stderr is watched line by line. */
export class CliProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private watchers: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      this.check();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  private check(): void {
    this.watchers = this.watchers.filter((w) => {
      const m = this.stderr.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  /** Resolves when stderr matches `re` (or rejects after `ms`, or when the process exits first). */
  waitFor(re: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${this.stderr}`)), ms);
      const done = (m: RegExpMatchArray) => {
        clearTimeout(t);
        resolve(m);
      };
      this.watchers.push({ re, resolve: done });
      this.check();
      void this.exited.then(() => {
        setTimeout(() => {
          if (this.watchers.some((w) => w.resolve === done)) {
            clearTimeout(t);
            reject(new Error(`exited before ${re}:\n${this.stderr}`));
          }
        }, 50);
      });
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

/** The 64 photos of ../shared/data/faces, sorted as describe walks the folder. */
export function facePhotos(): string[] {
  return readdirSync(FACES_DIR)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .map((f) => join(FACES_DIR, f));
}

export async function waitUntil(what: string, fn: () => Promise<boolean>, ms = 60_000, every = 100): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
