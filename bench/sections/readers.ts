/** Issue 3: every layout's reader on a full-size file (random weights, real dimensions): read time and peak RSS. */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE_WRITERS } from '../../test/fixtures/writers.js';
import { mb, runTask, WORK_DIR, type Section } from '../harness.js';

export const readersSection: Section = {
  name: 'readers',
  title: 'Weight readers: full-size read time and peak RSS per layout',
  async run(ctx) {
    mkdirSync(WORK_DIR, { recursive: true });
    const rows: string[] = [];
    for (const writer of FIXTURE_WRITERS) {
      const path = join(WORK_DIR, `random-${writer.name}-${writer.fileName}`);
      if (!existsSync(path)) {
        ctx.log(`writing ${path}`);
        await runTask('make-fixture', { writer: writer.name, path });
      }
      ctx.log(`reading ${writer.name}`);
      const r = await runTask<{ ms: number; format: string; weightBytes: number }>('read-weights', { path });
      const ratio = r.maxRss / r.result.weightBytes;
      rows.push(
        `| ${writer.name} | ${r.result.format} | ${mb(statSync(path).size)} ` +
          `| ${(r.result.ms / 1000).toFixed(2)} s | ${mb(r.maxRss)} | ${ratio.toFixed(2)}x ` +
          `| ${ratio < 2 ? 'yes' : 'NO'} |`,
      );
    }
    return [
      'Random weights of the real dimensions (145,002,878 parameters, 553 MiB as ' +
        'float32), written by the fixture writers, read by',
      '`readWeights` (content detection + read + topology check) in a fresh process ' +
        'each. Peak RSS is the whole process (Node itself included).',
      '',
      '| writer | format | file | read | peak RSS | peak / weights | < 2x |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...rows,
    ].join('\n');
  },
};
