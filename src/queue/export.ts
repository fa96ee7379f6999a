/**
 * A run's descriptors written out in submission order, through the same sink `describe -o` uses: JSON lines, or a
 * float32 matrix (.npy / .f32) with the same index file. Photos without a face are written as describe writes
 * them; photos that failed are left out (and counted).
 */
import type pg from 'pg';
import { openDescriptorSink, type OutputFormat } from '../output/descriptor-sink.js';
import { readResults, type Run } from './store.js';

export interface ExportOptions {
  readonly path: string | undefined;
  readonly format: OutputFormat;
  readonly overwrite: boolean;
  readonly stdout: NodeJS.WritableStream;
}

/** The descriptor width of a run, from a stored row (the model is not loaded here). */
async function runDimension(db: pg.Pool, run: Run): Promise<number> {
  const r = await db.query<{ d: number }>(
    `SELECT octet_length(descriptors) / (4 * CASE WHEN faces IS NULL THEN 1 ELSE jsonb_array_length(faces) END) AS d
     FROM vggface_queue_results WHERE run = $1 AND status = 'described' LIMIT 1`,
    [run.id],
  );
  return r.rows[0]?.d ?? (run.settings.layer === 'fc8' ? 2622 : 4096);
}

export async function exportRun(
  db: pg.Pool,
  run: Run,
  o: ExportOptions,
): Promise<{ photos: number; rows: number; failed: number }> {
  const dimension = await runDimension(db, run);
  const detected = run.settings.detector !== 'none';
  const sink = await openDescriptorSink({
    path: o.path,
    format: o.format,
    resume: false,
    overwrite: o.overwrite,
    settings: {
      dimension,
      layer: run.settings.layer,
      normalized: run.settings.normalize,
      detector: run.settings.detector,
    },
    stdout: o.stdout,
  });
  let photos = 0;
  let rows = 0;
  let failed = 0;
  try {
    for await (const r of readResults(db, run.id, dimension)) {
      if (r.status === 'failed') {
        failed++;
        continue;
      }
      photos++;
      rows += r.descriptors.length;
      await sink.write({
        image: r.reference,
        detected,
        rows: r.descriptors.map((descriptor, i) => ({ descriptor, face: r.faces?.[i] })),
      });
    }
  } finally {
    await sink.close();
  }
  return { photos, rows, failed };
}
