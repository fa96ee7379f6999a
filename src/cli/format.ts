/** Output helpers: compact JSON numbers and writing lines to stdout with back-pressure. */

/** The shortest decimal that reads back as the same float32 (e.g. 0.1, not 0.10000000149011612). */
export function float32ToString(x: number): string {
  if (!Number.isFinite(x)) return 'null';
  if (x === 0) return '0';
  for (let p = 6; p < 9; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(Number(x.toPrecision(9)));
}

export function vectorJson(v: Float32Array): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + float32ToString(v[i]);
  return s + ']';
}

/** Writes to a stream and waits when its buffer is full, so 100,000 lines never pile up in memory. */
export async function writeLine(stream: NodeJS.WritableStream, line: string): Promise<void> {
  if (!stream.write(line + '\n')) await new Promise<void>((resolve) => stream.once('drain', resolve));
}
