/**
 * A restricted reader for Python pickles (protocols 2-5, the binary opcodes `torch.save` and Python's pickler emit).
 *
 * It never executes anything: a global (GLOBAL, STACK_GLOBAL) is resolved only if the caller allowlisted it, and
 * "calling" one (REDUCE, NEWOBJ) runs the caller's own handler for that name on plain data. Any other global
 * (`os.system`, `builtins.eval`, `subprocess.Popen` ...) is refused with an error naming it, before anything else
 * happens. Opcodes that need Python objects or registries (INST, OBJ, EXT*, out-of-band buffers) are refused.
 *
 * Values: None -> null, bool, int -> number (bigint beyond 2^53), float -> number, str -> string,
 * bytes -> Uint8Array, list and tuple -> arrays (tuples frozen), dict -> Map (insertion order), set -> Set,
 * allowlisted globals -> {@link PickleGlobal}.
 */
import { formatError, VggFaceError } from '../errors.js';

/** A reference to an allowlisted global, e.g. `collections.OrderedDict`. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}

  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface GlobalHandler {
  /** Builds the value of `global(*args)` (REDUCE) or `global.__new__(global, *args)` (NEWOBJ) from plain data. */
  readonly call?: (args: readonly unknown[]) => unknown;
}

export interface UnpickleOptions {
  /** What is being read, for messages, e.g. "model.pth: data.pkl". */
  readonly source: string;
  /** The file path errors are about. */
  readonly path: string;
  /** Allowed globals by qualified name ("module.name"). Everything else is refused. */
  readonly globals: ReadonlyMap<string, GlobalHandler>;
  /** Resolves a persistent id (BINPERSID); without it, persistent ids are refused. */
  readonly persistentLoad?: (pid: unknown) => unknown;
}

/** Raised when the bytes end before STOP: the caller may retry with more of the file. */
export class TruncatedPickleError extends VggFaceError {}

/** Opcode names, for messages. */
const OPCODE_NAMES: Record<number, string> = {
  0x28: 'MARK',
  0x2e: 'STOP',
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4a: 'BININT',
  0x4b: 'BININT1',
  0x4c: 'LONG',
  0x4d: 'BININT2',
  0x4e: 'NONE',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x52: 'REDUCE',
  0x53: 'STRING',
  0x54: 'BINSTRING',
  0x55: 'SHORT_BINSTRING',
  0x56: 'UNICODE',
  0x58: 'BINUNICODE',
  0x61: 'APPEND',
  0x62: 'BUILD',
  0x63: 'GLOBAL',
  0x64: 'DICT',
  0x7d: 'EMPTY_DICT',
  0x65: 'APPENDS',
  0x67: 'GET',
  0x68: 'BINGET',
  0x69: 'INST',
  0x6a: 'LONG_BINGET',
  0x6c: 'LIST',
  0x5d: 'EMPTY_LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x71: 'BINPUT',
  0x72: 'LONG_BINPUT',
  0x73: 'SETITEM',
  0x74: 'TUPLE',
  0x29: 'EMPTY_TUPLE',
  0x75: 'SETITEMS',
  0x47: 'BINFLOAT',
  0x80: 'PROTO',
  0x81: 'NEWOBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x85: 'TUPLE1',
  0x86: 'TUPLE2',
  0x87: 'TUPLE3',
  0x88: 'NEWTRUE',
  0x89: 'NEWFALSE',
  0x8a: 'LONG1',
  0x8b: 'LONG4',
  0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES',
  0x8c: 'SHORT_BINUNICODE',
  0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8',
  0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS',
  0x91: 'FROZENSET',
  0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL',
  0x94: 'MEMOIZE',
  0x95: 'FRAME',
  0x96: 'BYTEARRAY8',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Opcodes that exist but need Python machinery this reader deliberately lacks. */
const REFUSED: Record<number, string> = {
  0x69: 'it instantiates a class by name (protocol 0)',
  0x6f: 'it instantiates a class (protocol 1)',
  0x82: 'it needs the copyreg extension registry',
  0x83: 'it needs the copyreg extension registry',
  0x84: 'it needs the copyreg extension registry',
  0x97: 'it needs out-of-band buffers',
  0x98: 'it needs out-of-band buffers',
  0x46: 'text opcodes (protocol 0) are not supported',
  0x49: 'text opcodes (protocol 0) are not supported',
  0x4c: 'text opcodes (protocol 0) are not supported',
  0x53: 'text opcodes (protocol 0) are not supported',
  0x56: 'text opcodes (protocol 0) are not supported',
  0x50: 'text opcodes (protocol 0) are not supported',
  0x67: 'text opcodes (protocol 0) are not supported',
  0x70: 'text opcodes (protocol 0) are not supported',
};

/** Largest LONG1/LONG4 accepted, in bytes: far above any integer a state dict holds. */
const MAX_LONG_BYTES = 64;

/**
 * Reads one pickle starting at `start` (a file may hold several in a row, as the legacy PyTorch format does).
 * Returns the value and the offset just after its STOP opcode.
 */
export function unpickle(bytes: Uint8Array, start: number, options: UnpickleOptions): { value: unknown; end: number } {
  const { source, path } = options;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let pos = start;
  let opAt = start;
  let op = 0;

  const name = () => OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`;
  const corrupt = (problem: string) =>
    formatError(path, `${source}: corrupt pickle: ${problem} (opcode ${name()} at byte ${opAt})`);
  const need = (n: number | bigint) => {
    if (BigInt(pos) + BigInt(n) > BigInt(bytes.length)) {
      throw new TruncatedPickleError(
        'E_FORMAT',
        `${path}: ${source}: truncated pickle: opcode ${name()} at byte ${opAt} ` +
          `needs ${n} more bytes, ${bytes.length - pos} left`,
        { input: path },
      );
    }
    return Number(n);
  };
  const u8 = () => (need(1), bytes[pos++]);
  const u16 = () => (need(2), (pos += 2), dv.getUint16(pos - 2, true));
  const u32 = () => (need(4), (pos += 4), dv.getUint32(pos - 4, true));
  const i32 = () => (need(4), (pos += 4), dv.getInt32(pos - 4, true));
  const u64 = () => (need(8), (pos += 8), dv.getBigUint64(pos - 8, true));
  const take = (n: number | bigint) => {
    const len = need(n);
    pos += len;
    return bytes.subarray(pos - len, pos);
  };
  const text = (n: number | bigint) => {
    try {
      return utf8.decode(take(n));
    } catch (err) {
      if (err instanceof VggFaceError) throw err;
      throw corrupt('string is not valid UTF-8');
    }
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) need(bytes.length - pos + 1);
    const s = new TextDecoder('latin1').decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]))
      throw corrupt('stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw corrupt('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw corrupt('no MARK before this opcode');
    return stack.splice(m);
  };
  const resolveGlobal = (module: string, nm: string) => {
    const qualified = `${module}.${nm}`;
    if (!options.globals.has(qualified)) {
      throw new VggFaceError(
        'E_UNSAFE',
        `${path}: ${source}: refusing pickle global ${qualified}: ` +
          `only ${[...options.globals.keys()].join(', ')} may appear in a weight file (vggface never runs ` +
          'code from a file)',
        { input: path },
      );
    }
    return new PickleGlobal(module, nm);
  };
  const call = (fn: unknown, args: unknown) => {
    if (!(fn instanceof PickleGlobal)) throw corrupt('call of something that is not a global');
    if (!Array.isArray(args)) throw corrupt(`arguments of ${fn.qualifiedName} are not a tuple`);
    const handler = options.globals.get(fn.qualifiedName);
    if (!handler?.call) throw formatError(path, `${source}: ${fn.qualifiedName} cannot be called in a weight file`);
    return handler.call(args);
  };
  const long = (raw: Uint8Array) => {
    if (raw.length === 0) return 0;
    if (raw.length > MAX_LONG_BYTES) throw corrupt(`integer of ${raw.length} bytes`);
    let v = 0n;
    for (let i = raw.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]);
    if (raw[raw.length - 1] & 0x80) v -= 1n << BigInt(raw.length * 8);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItems = (dict: unknown, items: unknown[]) => {
    if (!(dict instanceof Map)) throw corrupt('SETITEM on something that is not a dict');
    if (items.length % 2 !== 0) throw corrupt('odd number of dict items');
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  };
  const append = (list: unknown, items: unknown[]) => {
    if (!Array.isArray(list) || Object.isFrozen(list)) throw corrupt('APPEND to something that is not a list');
    list.push(...items);
  };
  const tuple = (items: unknown[]) => Object.freeze(items);

  for (;;) {
    opAt = pos;
    op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v < 2 || v > 5) throw formatError(path, `${source}: pickle protocol ${v} is not supported (2 to 5 are)`);
        break;
      }
      case 0x95: // FRAME: a length hint
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length > 0) throw corrupt(`${stack.length} values left on the stack at STOP`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(long(take(u8())));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) throw corrupt('negative length');
        stack.push(long(take(n)));
        break;
      }
      case 0x47:
        stack.push((need(8), (pos += 8), dv.getFloat64(pos - 8, false)));
        break; // BINFLOAT (big-endian)
      case 0x58:
        stack.push(text(u32()));
        break; // BINUNICODE
      case 0x8c:
        stack.push(text(u8()));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(text(u64()));
        break; // BINUNICODE8
      case 0x54: {
        // BINSTRING (Python 2 str)
        const n = i32();
        if (n < 0) throw corrupt('negative length');
        stack.push(new TextDecoder('latin1').decode(take(n)));
        break;
      }
      case 0x55:
        stack.push(new TextDecoder('latin1').decode(take(u8())));
        break; // SHORT_BINSTRING
      case 0x42:
        stack.push(new Uint8Array(take(u32())));
        break; // BINBYTES
      case 0x43:
        stack.push(new Uint8Array(take(u8())));
        break; // SHORT_BINBYTES
      case 0x8e:
        stack.push(new Uint8Array(take(u64())));
        break; // BINBYTES8
      case 0x96:
        stack.push(new Uint8Array(take(u64())));
        break; // BYTEARRAY8
      case 0x29:
        stack.push(tuple([]));
        break; // EMPTY_TUPLE
      case 0x85:
        stack.push(tuple([pop()]));
        break; // TUPLE1
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push(tuple([pop(), b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(tuple([pop(), b, c]));
        break;
      }
      case 0x74:
        stack.push(tuple(popMark()));
        break; // TUPLE
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c:
        stack.push(popMark());
        break; // LIST
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        append(top(), items);
        break;
      }
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        // DICT
        const d = new Map();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw corrupt('ADDITEMS on something that is not a set');
        for (const i of items) s.add(i);
        break;
      }
      case 0x91:
        stack.push(new Set(popMark()));
        break; // FROZENSET
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw corrupt(`memo entry ${k} was never stored`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(resolveGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const nm = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof nm !== 'string') throw corrupt('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module, nm));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size > 0) throw corrupt('keyword arguments are not supported');
        stack.push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD: sets an object's state (e.g. OrderedDict._metadata); nothing here needs it
        pop();
        top();
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad)
          throw formatError(path, `${source}: unexpected persistent id in pickle (byte ${opAt})`);
        stack.push(options.persistentLoad(pid));
        break;
      }
      default: {
        const why = REFUSED[op];
        if (why) throw formatError(path, `${source}: pickle opcode ${name()} at byte ${opAt} is not supported: ${why}`);
        throw formatError(
          path,
          `${source}: unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} ` +
            `at byte ${opAt}: not a pickle, or a corrupt one`,
        );
      }
    }
  }
}
