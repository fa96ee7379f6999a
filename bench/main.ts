/**
 * `npm run bench [-- --only a,b] [--quick] [--write]`: runs the benchmark sections, prints markdown,
 * and with --write records it in BENCHMARKS.md. Speed and memory are measured here, never in tests.
 */
import { join } from 'node:path';
import { machineLine, ROOT, writeSection, type SectionContext } from './harness.js';
import { SECTIONS } from './sections.js';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : undefined;
  const unknown = only?.filter((n) => !SECTIONS.some((s) => s.name === n)) ?? [];
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown section(s): ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}\n`,
    );
    process.exit(2);
  }
  const ctx: SectionContext = { quick: args.includes('--quick'), log: (m) => process.stderr.write(`[bench] ${m}\n`) };
  const command = `npm run bench -- ${args.join(' ')}`.trim();
  for (const section of SECTIONS) {
    if (only && !only.includes(section.name)) continue;
    ctx.log(`section ${section.name}: ${section.title}`);
    const body = await section.run(ctx);
    const record = section.record?.() ?? { name: section.name, title: section.title };
    const md =
      `## ${record.title}\n\nMachine: ${machineLine()}. Date: ${new Date().toISOString().slice(0, 10)}. ` +
      `Command: \`${command}\`${ctx.quick ? ' (quick run: not for the record)' : ''}.\n\n${body}`;
    process.stdout.write(md + '\n\n');
    if (args.includes('--write') && !ctx.quick) writeSection(join(ROOT, 'BENCHMARKS.md'), record.name, md);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
