/**
 * A protobuf wire-format reader over a byte array: it yields fields with their byte ranges, so callers view
 * large payloads (packed floats) in place instead of decoding them into new arrays.
 * Hand-written because the readers need zero-copy access that generated code does not give.
 */
import { formatError } from '../errors.js';

/** TextDecoder rather than Buffer: the reader also runs in the browser build (ONNX metadata). */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true }); // keeps a BOM, as Buffer's toString did

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

export interface ProtoField {
  readonly no: number;
  readonly wire: number;
  /** varint value (as a number; exact up to 2^53), for WIRE_VARINT. */
  readonly value: number;
  /** Byte range of the payload: for WIRE_LEN the bytes, for fixed32/64 the raw bytes. */
  readonly start: number;
  readonly end: number;
  /** Where the field's tag starts: [tagStart, start) is framing (tag and length), free to reuse once parsed. */
  readonly tagStart: number;
}

export class ProtoReader {
  constructor(
    readonly bytes: Uint8Array,
    /** Names the input in error messages. */
    readonly source: string,
  ) {}

  private varint(pos: number, limit: number): [number, number] {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= limit) throw formatError(this.source, `truncated protobuf: varint runs past byte ${limit}`);
      const b = this.bytes[pos++];
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return [result, pos];
      scale *= 128;
    }
    throw formatError(this.source, `corrupt protobuf: varint longer than 10 bytes at byte ${pos}`);
  }

  /** Iterates the fields of the message occupying [start, end). Throws on malformed or truncated data. */
  *fields(start = 0, end = this.bytes.byteLength): Generator<ProtoField> {
    let pos = start;
    while (pos < end) {
      const tagStart = pos;
      const [tag, p1] = this.varint(pos, end);
      const no = Math.floor(tag / 8);
      const wire = tag & 7;
      if (no === 0) throw formatError(this.source, `corrupt protobuf: field number 0 at byte ${pos}`);
      pos = p1;
      switch (wire) {
        case WIRE_VARINT: {
          const [v, p2] = this.varint(pos, end);
          yield { no, wire, value: v, start: pos, end: p2, tagStart };
          pos = p2;
          break;
        }
        case WIRE_FIXED64:
        case WIRE_FIXED32: {
          const size = wire === WIRE_FIXED64 ? 8 : 4;
          if (pos + size > end)
            throw formatError(
              this.source,
              `truncated protobuf: fixed${size * 8} field ${no} at byte ${pos} runs past byte ${end}`,
            );
          yield { no, wire, value: 0, start: pos, end: pos + size, tagStart };
          pos += size;
          break;
        }
        case WIRE_LEN: {
          const [len, p2] = this.varint(pos, end);
          if (p2 + len > end) {
            throw formatError(
              this.source,
              `truncated protobuf: field ${no} at byte ${pos} declares ${len} bytes but only ${end - p2} remain`,
            );
          }
          yield { no, wire, value: len, start: p2, end: p2 + len, tagStart };
          pos = p2 + len;
          break;
        }
        default:
          throw formatError(
            this.source,
            `corrupt protobuf: unsupported wire type ${wire} (field ${no}) at byte ${pos}`,
          );
      }
    }
  }

  string(f: ProtoField): string {
    return utf8.decode(this.bytes.subarray(f.start, f.end));
  }

  /** Repeated varints, packed (one WIRE_LEN field) or not (this field alone). */
  varints(f: ProtoField): number[] {
    if (f.wire === WIRE_VARINT) return [f.value];
    if (f.wire !== WIRE_LEN)
      throw formatError(this.source, `corrupt protobuf: field ${f.no} should hold integers, has wire type ${f.wire}`);
    const out: number[] = [];
    let pos = f.start;
    while (pos < f.end) {
      const [v, p] = this.varint(pos, f.end);
      out.push(v);
      pos = p;
    }
    return out;
  }
}

/**
 * The tags at the top level of `head`, stopping quietly at the first field that runs past its end:
 * for sniffing a format from the first bytes of a large file.
 */
export function peekTags(head: Uint8Array, max = 64): { no: number; wire: number }[] {
  const tags: { no: number; wire: number }[] = [];
  const r = new ProtoReader(head, 'head');
  try {
    for (const f of r.fields()) {
      tags.push({ no: f.no, wire: f.wire });
      if (tags.length >= max) break;
    }
  } catch (err) {
    // The field that was truncated still told us its tag, if the error came after reading it.
    const m = /field (\d+) at byte/.exec((err as Error).message);
    if (m) tags.push({ no: Number(m[1]), wire: WIRE_LEN });
  }
  return tags;
}
