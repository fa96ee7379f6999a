/**
 * What this CPU offers the int8 kernels, from the flags the kernel reports (Linux `/proc/cpuinfo`).
 *
 * ONNX Runtime's x86 int8 kernels multiply uint8 activations by int8 weights. With VNNI (`vpdpbusd`) or AMX the
 * products are summed in int32, exactly. Without it (AVX2, and AVX-512 without VNNI) they use `vpmaddubsw`, which adds
 * two u8 x s8 products into a saturating int16: 255 x 127 x 2 = 64,770 > 32,767, so weights in -127..127 can clip.
 * The project's int8 models keep weights in -64..64 (see onnx/quantize.ts), where 255 x 64 x 2 = 32,640 cannot clip,
 * so they compute the same on every CPU; this module only matters for older int8 models and for reporting.
 */
import { readFileSync } from 'node:fs';
import { arch, platform } from 'node:os';

/** The largest |int8 weight| for which two u8 x s8 products always fit an int16: 255 x 64 x 2 = 32,640 <= 32,767. */
export const NON_SATURATING_WEIGHT_LIMIT = 64;

/** The flags that decide which int8 kernels ONNX Runtime runs. */
export const INT8_FLAGS = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8'] as const;
export type Int8Flag = (typeof INT8_FLAGS)[number];

export interface CpuFeatures {
  readonly arch: string;
  /** The flags of INT8_FLAGS this CPU has, or undefined where they cannot be read (not Linux). */
  readonly flags: readonly Int8Flag[] | undefined;
}

/** Reads the CPU's flags (Linux); `cpuinfo` is for tests. */
export function cpuFeatures(cpuinfo?: string): CpuFeatures {
  const a = arch();
  let text = cpuinfo;
  if (text === undefined && platform() === 'linux') {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      text = undefined; // a sandbox without /proc: flags unknown, handled as such below
    }
  }
  if (text === undefined) return { arch: a, flags: undefined };
  const line = /^flags\s*:(.*)$/m.exec(text);
  const present = new Set((line?.[1] ?? '').trim().split(/\s+/));
  return { arch: a, flags: INT8_FLAGS.filter((f) => present.has(f)) };
}

/**
 * Whether int8 weights beyond -64..64 can saturate in ONNX Runtime's default kernels here: x86 without VNNI or AMX.
 * Unknown flags on x86 count as "can saturate" (the exact kernels are slower, never wrong).
 */
export function int8PairsSaturate(cpu: CpuFeatures): boolean {
  if (cpu.arch !== 'x64' && cpu.arch !== 'ia32') return false; // ARM's dot-product instructions sum in int32
  if (cpu.flags === undefined) return true;
  return !cpu.flags.some((f) => f === 'avx512_vnni' || f === 'avx_vnni' || f === 'amx_int8');
}

/** "x64: avx2 avx512f avx512_vnni", for benchmark tables and test messages. */
export function describeCpu(cpu: CpuFeatures): string {
  if (cpu.flags === undefined) return `${cpu.arch}: flags unknown`;
  return `${cpu.arch}: ${cpu.flags.length > 0 ? cpu.flags.join(' ') : `none of ${INT8_FLAGS.join(', ')}`}`;
}

/**
 * Whether an int8 model whose weights reach `weightLimit` needs ONNX Runtime's exact (slower) kernels on this CPU to
 * compute what it was calibrated for: only full-range models (builder 1) on CPUs whose kernels saturate.
 */
export function needsExactInt8Kernels(weightLimit: number, cpu: CpuFeatures): boolean {
  return weightLimit > NON_SATURATING_WEIGHT_LIMIT && int8PairsSaturate(cpu);
}
