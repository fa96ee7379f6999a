/**
 * Reads what `inspect` and the loader need from an ONNX file (IR version, opsets, metadata, graph I/O)
 * without reading the weights: top-level fields are scanned with positioned reads and the graph is
 * parsed only for its inputs and outputs, skipping initializer payloads.
 */
import { closeSync, readSync, fstatSync } from 'node:fs';
import { openForReading } from '../util/files.js';
import { formatError } from '../errors.js';
import { ProtoReader, WIRE_LEN } from '../proto/reader.js';

export interface OnnxInfo {
  readonly irVersion: number;
  readonly producer: string;
  readonly opsets: readonly { domain: string; version: number }[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly initializers: readonly { name: string; dims: number[]; dataType: number; bytes: number }[];
  readonly fileSize: number;
}

class FileScanner {
  private readonly buf = Buffer.alloc(16);
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}

  varintAt(pos: number): [number, number] {
    const n = readSync(this.fd, this.buf, 0, Math.min(10, this.size - pos), pos);
    let result = 0;
    let scale = 1;
    for (let i = 0; i < n; i++) {
      const b = this.buf[i];
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return [result, pos + i + 1];
      scale *= 128;
    }
    throw formatError(this.path, `truncated ONNX protobuf at byte ${pos}`);
  }

  read(start: number, end: number): Buffer {
    const out = Buffer.alloc(end - start);
    let off = 0;
    while (off < out.length) {
      const n = readSync(this.fd, out, off, out.length - off, start + off);
      if (n === 0) throw formatError(this.path, `truncated ONNX file: expected ${end} bytes, file has ${this.size}`);
      off += n;
    }
    return out;
  }

  /** Top-level fields of [start, end): tag, wire, payload range (varint value for wire 0). */
  *fields(
    start: number,
    end: number,
  ): Generator<{ no: number; wire: number; value: number; start: number; end: number }> {
    let pos = start;
    while (pos < end) {
      const [tag, p1] = this.varintAt(pos);
      const no = Math.floor(tag / 8);
      const wire = tag & 7;
      if (wire === 0) {
        const [v, p2] = this.varintAt(p1);
        yield { no, wire, value: v, start: p1, end: p2 };
        pos = p2;
      } else if (wire === 2) {
        const [len, p2] = this.varintAt(p1);
        if (p2 + len > end)
          throw formatError(
            this.path,
            `truncated ONNX file: field ${no} at byte ${pos} declares ${len} bytes, ${end - p2} remain`,
          );
        yield { no, wire, value: len, start: p2, end: p2 + len };
        pos = p2 + len;
      } else if (wire === 5) {
        yield { no, wire, value: 0, start: p1, end: p1 + 4 };
        pos = p1 + 4;
      } else if (wire === 1) {
        yield { no, wire, value: 0, start: p1, end: p1 + 8 };
        pos = p1 + 8;
      } else {
        throw formatError(this.path, `not an ONNX model: wire type ${wire} at byte ${pos}`);
      }
    }
  }
}

export function readOnnxInfo(path: string): OnnxInfo {
  const fd = openForReading(path);
  try {
    const size = fstatSync(fd).size;
    const s = new FileScanner(fd, size, path);
    let irVersion = 0;
    let producer = '';
    const opsets: { domain: string; version: number }[] = [];
    const metadata: Record<string, string> = {};
    const inputs: string[] = [];
    const outputs: string[] = [];
    const initializers: OnnxInfo['initializers'][number][] = [];
    let sawGraph = false;
    for (const f of s.fields(0, size)) {
      if (f.no === 1 && f.wire === 0) irVersion = f.value;
      else if (f.no === 2 && f.wire === 2) producer = s.read(f.start, f.end).toString('utf8');
      else if (f.no === 8 && f.wire === 2) {
        const r = new ProtoReader(s.read(f.start, f.end), path);
        let domain = '';
        let version = 0;
        for (const g of r.fields()) {
          if (g.no === 1) domain = r.string(g);
          else if (g.no === 2) version = g.value;
        }
        opsets.push({ domain, version });
      } else if (f.no === 14 && f.wire === 2) {
        const r = new ProtoReader(s.read(f.start, f.end), path);
        let key = '';
        let value = '';
        for (const g of r.fields()) {
          if (g.no === 1) key = r.string(g);
          else if (g.no === 2) value = r.string(g);
        }
        metadata[key] = value;
      } else if (f.no === 7 && f.wire === 2) {
        sawGraph = true;
        for (const g of s.fields(f.start, f.end)) {
          if ((g.no === 11 || g.no === 12) && g.wire === 2) {
            const r = new ProtoReader(s.read(g.start, g.end), path);
            for (const h of r.fields()) if (h.no === 1) (g.no === 11 ? inputs : outputs).push(r.string(h));
          } else if (g.no === 5 && g.wire === 2) {
            initializers.push(readInitializerHeader(s, g.start, g.end));
          }
        }
      }
    }
    if (!sawGraph || irVersion === 0) throw formatError(path, 'not an ONNX model: no ir_version or graph');
    const initNames = new Set(initializers.map((i) => i.name));
    return {
      irVersion,
      producer,
      opsets,
      metadata,
      inputs: inputs.filter((i) => !initNames.has(i)),
      outputs,
      initializers,
      fileSize: size,
    };
  } finally {
    closeSync(fd);
  }
}

function readInitializerHeader(s: FileScanner, start: number, end: number): OnnxInfo['initializers'][number] {
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let bytes = 0;
  for (const f of s.fields(start, end)) {
    if (f.no === 1 && f.wire === 0) dims.push(f.value);
    else if (f.no === 1 && f.wire === 2) {
      const r = new ProtoReader(s.read(f.start, f.end), 'dims');
      dims.push(...r.varints({ ...f, start: 0, end: f.end - f.start, tagStart: 0 }));
    } else if (f.no === 2 && f.wire === 0) dataType = f.value;
    else if (f.no === 8 && f.wire === 2) name = s.read(f.start, f.end).toString('utf8');
    else if (f.wire === WIRE_LEN) bytes += f.end - f.start;
  }
  return { name, dims, dataType, bytes };
}
