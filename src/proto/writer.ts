/**
 * A protobuf wire-format writer that never copies large payloads: a message is a list of byte chunks
 * (small encoded headers plus references to the caller's arrays), sized before anything is written,
 * then streamed to a file descriptor. A 550 MB model is written without a second copy of its weights.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { fileError } from '../errors.js';

const textEncoder = new TextEncoder();

export class ProtoMessage {
  private readonly chunks: Uint8Array[] = [];
  private pending: number[] = [];
  private length = 0;

  get byteLength(): number {
    return this.length + this.pending.length;
  }

  private flushPending(): void {
    if (this.pending.length > 0) {
      this.chunks.push(Uint8Array.from(this.pending));
      this.length += this.pending.length;
      this.pending = [];
    }
  }

  private rawVarint(v: number | bigint): void {
    let n = BigInt.asUintN(64, BigInt(v));
    while (n >= 0x80n) {
      this.pending.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    this.pending.push(Number(n));
  }

  private tag(field: number, wire: number): void {
    this.rawVarint(field * 8 + wire);
  }

  varint(field: number, value: number | bigint): this {
    this.tag(field, 0);
    this.rawVarint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.pending.push(...b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  /** A length-delimited field whose payload is `data`, referenced, not copied. */
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.rawVarint(data.byteLength);
    if (data.byteLength <= 256) {
      for (const b of data) this.pending.push(b);
    } else {
      this.flushPending();
      this.chunks.push(data);
      this.length += data.byteLength;
    }
    return this;
  }

  /** Packed repeated varints. */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoMessage();
    for (const v of values) inner.rawVarint(v);
    return this.message(field, inner);
  }

  packedFloats(field: number, values: readonly number[]): this {
    const f = new Float32Array(values);
    return this.bytes(field, new Uint8Array(f.buffer));
  }

  message(field: number, msg: ProtoMessage): this {
    msg.flushPending();
    this.tag(field, 2);
    this.rawVarint(msg.length);
    this.flushPending();
    for (const c of msg.chunks) this.chunks.push(c);
    this.length += msg.length;
    return this;
  }

  /** All chunks in order (small headers and referenced payloads). */
  parts(): readonly Uint8Array[] {
    this.flushPending();
    return this.chunks;
  }

  /** Concatenates into one buffer: for small messages and tests only. */
  toBuffer(): Buffer {
    return Buffer.concat(this.parts());
  }

  /**
   * Writes the message to `path` atomically: into a temporary file beside it, fsynced, then renamed.
   * On failure nothing is left at `path` or beside it.
   */
  writeFileAtomic(path: string): void {
    const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, 'w');
      for (const part of this.parts()) writeFully(fd, part);
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      renameSync(tmp, path);
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      removeIfPresent(tmp);
      throw fileError(path, err, 'write');
    }
  }
}

/** Cleanup after a failed write: the temporary may not exist (ENOENT) or its folder may not (ENOTDIR). */
function removeIfPresent(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
  }
}

function writeFully(fd: number, data: Uint8Array): void {
  const max = 1 << 30;
  let off = 0;
  while (off < data.byteLength) {
    off += writeSync(fd, data, off, Math.min(max, data.byteLength - off));
  }
}
