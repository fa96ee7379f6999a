/**
 * Where a run stands: photos recorded (described, without a face, failed), queued, in flight (in batches a worker
 * holds), dead (in batches that failed every try), the rate over the last minute and the time left at that rate.
 * Counts of recorded photos come from the results; in-flight and dead ones from pg-boss's job table (read only).
 */
import type pg from 'pg';
import { deadJobs } from './submit.js';
import { BOSS_SCHEMA, describeBinding, type Run } from './store.js';

export interface RunStatus {
  readonly run: string;
  readonly createdAt: string;
  /** queued: nothing in flight; running: a worker holds a batch; done; stalled: only dead batches are left. */
  readonly state: 'queued' | 'running' | 'done' | 'stalled';
  readonly model: string | null;
  /** descriptors, or gallery (faces also added to the queue database's gallery). */
  readonly into: string;
  readonly total: number;
  /** Recorded without error: described + noFace. */
  readonly done: number;
  readonly described: number;
  readonly noFace: number;
  readonly faces: number;
  /** Recorded with the reason the photo could not be described (queue retry queues them again). */
  readonly failed: number;
  readonly pending: number;
  readonly inFlight: number;
  /** Photos in dead batches (queue retry queues them again). */
  readonly dead: number;
  readonly batches: {
    readonly total: number;
    readonly queued: number;
    readonly inFlight: number;
    readonly completed: number;
    readonly dead: number;
  };
  /** Photos recorded per second over the last minute. */
  readonly rate: number;
  /** Seconds left at that rate; null when nothing moves. */
  readonly etaSeconds: number | null;
  /** The reasons photos failed, most frequent first (at most 10), with one example each. */
  readonly failures: readonly { readonly reason: string; readonly photos: number; readonly example: string }[];
  readonly deadBatches: readonly { readonly batch: number; readonly photos: number; readonly error: string | null }[];
  /** Runs into a gallery: photos added to it, and photos it already held (the same content). */
  readonly gallery?: { readonly added: number; readonly duplicates: number };
}

const RATE_WINDOW_S = 60;

export async function runStatus(db: pg.Pool, run: Run): Promise<RunStatus> {
  const counts = await db.query<{
    described: string;
    no_face: string;
    failed: string;
    faces: string | null;
    added: string;
    duplicates: string;
    recent: string;
    first: Date | null;
    now: Date;
  }>(
    `SELECT count(*) FILTER (WHERE status = 'described') AS described,
            count(*) FILTER (WHERE status = 'no_face') AS no_face,
            count(*) FILTER (WHERE status = 'failed') AS failed,
            sum(CASE WHEN status <> 'described' THEN 0 WHEN faces IS NULL THEN 1 ` +
      `ELSE jsonb_array_length(faces) END) AS faces,
            count(*) FILTER (WHERE gallery = 'added') AS added,
            count(*) FILTER (WHERE gallery = 'duplicate') AS duplicates,
            count(*) FILTER (WHERE recorded_at > clock_timestamp() - make_interval(secs => $2)) AS recent,
            min(recorded_at) AS first, clock_timestamp() AS now
     FROM vggface_queue_results WHERE run = $1`,
    [run.id, RATE_WINDOW_S],
  );
  const c = counts.rows[0];
  const described = Number(c.described);
  const noFace = Number(c.no_face);
  const failed = Number(c.failed);
  // Photos of held batches that are not recorded yet, and batch counts by state.
  const jobs = await db.query<{ state: string; jobs: string }>(
    `SELECT state, count(*) AS jobs FROM ${BOSS_SCHEMA}.job WHERE name = $1 GROUP BY state`,
    [run.queue],
  );
  const byState = Object.fromEntries(jobs.rows.map((r) => [r.state, Number(r.jobs)]));
  const held = await db.query<{ photos: string }>(
    `SELECT count(*) AS photos FROM ${BOSS_SCHEMA}.job j CROSS JOIN LATERAL jsonb_array_elements(j.data->'refs') e
     WHERE j.name = $1 AND j.state = 'active'
       AND NOT EXISTS (SELECT 1 FROM vggface_queue_results r WHERE r.run = $2 AND r.reference = e->>1)`,
    [run.queue, run.id],
  );
  const inFlight = Number(held.rows[0].photos);
  const deadList = await deadJobs(db, run.queue);
  const deadRefs = deadList.flatMap((d) => d.data.refs.map((r) => r[1]));
  const deadRecorded = deadRefs.length
    ? Number(
        (
          await db.query<{ n: string }>(
            'SELECT count(*) AS n FROM vggface_queue_results WHERE run = $1 AND reference = ANY($2::text[])',
            [run.id, deadRefs],
          )
        ).rows[0].n,
      )
    : 0;
  const dead = deadRefs.length - deadRecorded;
  const recorded = described + noFace + failed;
  const pending = Math.max(0, run.total - recorded - inFlight - dead);
  const failures = (
    await db.query<{ reason: string; photos: string; example: string }>(
      `SELECT error AS reason, count(*) AS photos, min(reference) AS example FROM vggface_queue_results
       WHERE run = $1 AND status = 'failed' GROUP BY error ORDER BY count(*) DESC, error LIMIT 10`,
      [run.id],
    )
  ).rows.map((r) => ({ reason: r.reason, photos: Number(r.photos), example: r.example }));
  const elapsed = c.first ? Math.max(1, (c.now.getTime() - c.first.getTime()) / 1000) : 0;
  const rate = c.first ? Number(c.recent) / Math.min(RATE_WINDOW_S, elapsed) : 0;
  const left = pending + inFlight;
  const state =
    left === 0 && dead === 0 ? 'done' : left === 0 ? 'stalled' : (byState.active ?? 0) > 0 ? 'running' : 'queued';
  return {
    run: run.id,
    createdAt: run.createdAt.toISOString(),
    state,
    model: run.model ? describeBinding(run.model) : null,
    into: run.into,
    total: run.total,
    done: described + noFace,
    described,
    noFace,
    faces: Number(c.faces ?? 0),
    failed,
    pending,
    inFlight,
    dead,
    batches: {
      total: run.batches,
      queued: (byState.created ?? 0) + (byState.retry ?? 0),
      inFlight: byState.active ?? 0,
      completed: byState.completed ?? 0,
      dead: byState.failed ?? 0,
    },
    rate: Math.round(rate * 100) / 100,
    etaSeconds: left === 0 ? 0 : rate > 0 ? Math.round(left / rate) : null,
    failures,
    deadBatches: deadList.map((d) => ({ batch: d.data.batch, photos: d.photos, error: d.error })),
    ...(run.into === 'gallery' ? { gallery: { added: Number(c.added), duplicates: Number(c.duplicates) } } : {}),
  };
}

function duration(s: number | null): string {
  if (s === null) return '?';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The status as a few lines for a terminal, with a progress bar. */
export function formatStatus(s: RunStatus, width = 30): string {
  const finished = s.done + s.failed;
  const frac = s.total ? finished / s.total : 1;
  const full = Math.round(frac * width);
  const bar =
    `[${'█'.repeat(full)}${'░'.repeat(width - full)}] ${Math.floor(frac * 100)}% ` +
    `| ${finished}/${s.total} | ${s.rate}/s | ETA ${duration(s.etaSeconds)}`;
  const lines = [
    `run ${s.run} (${s.state}), created ${s.createdAt}, model ${s.model ?? '(bound by the first worker)'}`,
    bar,
    `done ${s.done} (${s.described} described, ${s.faces} faces, ${s.noFace} without a face) · ` +
      `failed ${s.failed} · pending ${s.pending} · in flight ${s.inFlight} · dead ${s.dead}`,
  ];
  if (s.gallery) lines.push(`gallery: ${s.gallery.added} added, ${s.gallery.duplicates} already there`);
  for (const f of s.failures) lines.push(`  failed: ${f.photos} x ${f.reason} (e.g. ${f.example})`);
  for (const d of s.deadBatches)
    lines.push(`  dead batch ${d.batch} (${d.photos} photos): ${d.error ?? 'no error recorded'}`);
  if (s.failed || s.dead) lines.push(`  (vggface queue retry ${s.run} queues them again)`);
  return lines.join('\n') + '\n';
}
