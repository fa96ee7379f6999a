/** Progress bars on stderr, only when stderr is a terminal (never in pipes, logs or CI). */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total?: number): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

/** A bar for `total` items when stderr is a TTY and `total` reaches `threshold`. */
export function progressBar(
  label: string,
  total: number,
  options: { threshold?: number; bytes?: boolean } = {},
): Progress {
  if (!process.stderr.isTTY || total < (options.threshold ?? 0)) return NONE;
  const format = options.bytes
    ? `${label} [{bar}] {percentage}% | {valueMB}/{totalMB} MB | ETA {eta_formatted}`
    : `${label} [{bar}] {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted}`;
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: false, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  const start = Date.now();
  const payload = (v: number, t: number) => ({
    valueMB: (v / 1e6).toFixed(1),
    totalMB: (t / 1e6).toFixed(1),
    rate: ((v / Math.max(1, Date.now() - start)) * 1000).toFixed(1),
  });
  bar.start(total, 0, payload(0, total));
  let lastTotal = total;
  return {
    update(done, newTotal) {
      if (newTotal !== undefined && newTotal !== lastTotal) {
        lastTotal = newTotal;
        bar.setTotal(newTotal);
      }
      bar.update(done, payload(done, lastTotal));
    },
    stop() {
      bar.stop();
    },
  };
}
