/**
 * The face generator against the set it was fitted to: zeros, spectrum, mate and non-mate cosines of generated
 * faces beside the real set's, and the time to generate `millionRows` faces (default 1,000,000) chunk by chunk.
 * Prints JSON; progress on stderr.
 */
import {
  ensureFaceGenerator,
  openFaceGenerator,
  setStatistics,
  type EnsureGeneratorOptions,
} from '../face-generator.js';
import { loadFaceSet } from '../face-sets.js';
import { finishTask, taskArgs } from '../harness.js';

const args = taskArgs<EnsureGeneratorOptions & { millionRows?: number; chunk?: number; components?: number }>();
const log = (m: string) => process.stderr.write(`[face-generator-check] ${m}\n`);
const t0 = performance.now();
const { params, set, path } = await ensureFaceGenerator({ ...args, log });
const fitMs = performance.now() - t0;
log(`generator ${path} (${(fitMs / 1000).toFixed(1)} s)`);
const real = loadFaceSet(set);
const components = args.components ?? 20;
const realStats = await setStatistics(real.data, real.rows, real.dim, real.identity, components);
const g = await openFaceGenerator(params);
try {
  const same = await g.faces(0, real.rows, 1);
  const genStats = await setStatistics(same.data, real.rows, real.dim, same.identity, components);
  // The same rows grouped as the real set is (as many faces per identity), for the mate cosine.
  const perReal = Math.round(real.rows / set.meta.identities);
  const g2 = await openFaceGenerator({ ...params, facesPerIdentity: perReal });
  let asReal;
  try {
    const rows = await g2.faces(0, real.rows, 1);
    asReal = await setStatistics(rows.data, real.rows, real.dim, rows.identity, components);
  } finally {
    await g2.close();
  }
  const total = args.millionRows ?? 1_000_000;
  const chunk = args.chunk ?? 10_000;
  const t = performance.now();
  const cpu0 = process.cpuUsage();
  for (let s = 0; s < total; s += chunk) {
    await g.faces(s, Math.min(chunk, total - s), 1);
    if ((s / chunk) % 20 === 0) log(`${s} / ${total} faces, ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const genMs = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  finishTask({
    params: {
      between: params.between.variances.length,
      within: params.within.variances.length,
      betweenResidual: params.between.residual,
      withinResidual: params.within.residual,
      betweenTotal: params.between.totalVariance,
      withinTotal: params.within.totalVariance,
    },
    fitMs,
    real: realStats,
    generated: genStats,
    generatedAsReal: { facesPerIdentity: perReal, ...asReal },
    // CPU time of all threads: what the wall time would be near on an idle machine (/ cores), whatever else ran.
    million: {
      rows: total,
      chunk,
      ms: genMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
      facesPerSecond: (total / genMs) * 1000,
    },
  });
} finally {
  await g.close();
}
