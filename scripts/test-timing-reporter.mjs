// A node:test reporter that writes, as JSON lines, each test file's wall time (from the runner's dequeue of the
// file to its completion: process start and imports included) and its top-level test counts; scripts/test.mjs
// prints them as a table after the run.
export default async function* timingReporter(source) {
  const files = new Map();
  const of = (file) => {
    let f = files.get(file);
    if (!f) files.set(file, (f = { file, start: undefined, ms: 0, passed: 0, failed: 0, skipped: 0 }));
    return f;
  };
  for await (const event of source) {
    const { file, name, nesting } = event.data ?? {};
    if (!file) continue;
    const f = of(file);
    if (name === file) {
      // The file itself, as the runner sees it.
      if (event.type === 'test:dequeue') f.start = performance.now();
      if (event.type === 'test:complete' && f.start !== undefined) f.ms = performance.now() - f.start;
    } else if ((event.type === 'test:pass' || event.type === 'test:fail') && nesting === 0) {
      if (event.data.skip || event.data.todo) f.skipped++;
      else if (event.type === 'test:pass') f.passed++;
      else f.failed++;
    }
  }
  for (const { file, ms, passed, failed, skipped } of files.values()) {
    yield `${JSON.stringify({ file, ms: Math.round(ms), passed, failed, skipped })}\n`;
  }
}
