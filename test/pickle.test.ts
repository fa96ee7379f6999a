/**
 * Issue 3: the restricted pickle reader. Pickles made by CPython's own pickler (protocols 2, 4 and 5, embedded as
 * hex) decode to the right values; hostile pickles (CPython's output for objects whose __reduce__ is os.system,
 * builtins.eval, subprocess.Popen, and hand-made GLOBAL/STACK_GLOBAL forms) are refused naming the global;
 * unknown opcodes, truncation and malformed streams give format errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VggFaceError } from '../src/errors.js';
import { PickleGlobal, TruncatedPickleError, unpickle, type GlobalHandler } from '../src/weights/pickle.js';
import { torchGlobals } from '../src/weights/torch-tensors.js';
import { PickleWriter } from './fixtures/pytorch-writer.js';

const hex = (s: string) => Buffer.from(s, 'hex');
const ORDERED_DICT = new Map<string, GlobalHandler>([['collections.OrderedDict', { call: () => new Map() }]]);
const read = (bytes: Uint8Array, globals: ReadonlyMap<string, GlobalHandler> = ORDERED_DICT) =>
  unpickle(bytes, 0, { source: 'test.pkl', path: 'test.pth', globals }).value;

// pickle.dumps({'a': [1, -2, 3.5, (True, None, False)], 'b': 'ü-unicode', 'big': 2**70, 'neg': -300, 'i32': -70000,
//               'u16': 60000, 'nested': {'x': (1,), 't3': (1, 2, 3), 'e': ()}}, protocol=2)
const PROTOCOL_2 =
  '80027d71002858010000006171015d7102284b014afeffffff47400c000000000000884e89877103655801000000627104580a00000' +
  '0c3bc2d756e69636f64657105580300000062696771068a0900000000000000004058030000006e656771074ad4feffff580300000' +
  '069333271084a90eefeff580300000075313671094d60ea58060000006e6573746564710a7d710b28580100000078710c4b0185710' +
  'd58020000007433710e4b014b024b0387710f58010000006571102975752e';
// The same plus 'bytes': b'xy\x00', 'set': {1, 2}, 'fs': frozenset([3]), 'od': OrderedDict([('k', 1)]), protocol=4 and
// 5 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, EMPTY_SET, ADDITEMS, FROZENSET, SHORT_BINBYTES, SETITEM).
const PROTOCOL_4 =
  '800495dd000000000000007d94288c0161945d94284b014afeffffff47400c000000000000884e898794658c0162948c0ac3bc2d7' +
  '56e69636f6465948c03626967948a090000000000000000408c036e6567944ad4feffff8c03693332944a90eefeff8c037531369' +
  '44d60ea8c066e6573746564947d94288c0178944b0185948c027433944b014b024b0387948c01659429758c05627974657394430' +
  '3787900948c03736574948f94284b014b02908c02667394284b0391948c026f64948c0b636f6c6c656374696f6e73948c0b4f726' +
  '465726564446963749493942952948c016b944b0173752e';
const PROTOCOL_5 = '8005' + PROTOCOL_4.slice(4);

function assertBase(v: unknown): Map<unknown, unknown> {
  assert.ok(v instanceof Map);
  assert.deepEqual(v.get('a'), [1, -2, 3.5, [true, null, false]]);
  assert.equal(v.get('b'), 'ü-unicode');
  assert.equal(v.get('big'), 2n ** 70n);
  assert.equal(v.get('neg'), -300);
  assert.equal(v.get('i32'), -70000);
  assert.equal(v.get('u16'), 60000);
  const nested = v.get('nested') as Map<string, unknown>;
  assert.deepEqual(
    [...nested.entries()],
    [
      ['x', [1]],
      ['t3', [1, 2, 3]],
      ['e', []],
    ],
  );
  assert.ok(Object.isFrozen(nested.get('t3')), 'tuples are frozen');
  return v;
}

test('CPython protocol 2 pickle: dict, list, tuples, ints of every width, float, unicode, bools, None', () => {
  const v = assertBase(read(hex(PROTOCOL_2)));
  assert.deepEqual([...v.keys()], ['a', 'b', 'big', 'neg', 'i32', 'u16', 'nested'], 'insertion order kept');
});

for (const [name, bytes] of [
  ['4', PROTOCOL_4],
  ['5', PROTOCOL_5],
] as const) {
  test(`CPython protocol ${name} pickle: frames, memoize, bytes, sets, and OrderedDict through STACK_GLOBAL`, () => {
    const v = assertBase(read(hex(bytes)));
    assert.deepEqual(v.get('bytes'), Uint8Array.from([0x78, 0x79, 0]));
    assert.deepEqual(v.get('set'), new Set([1, 2]));
    assert.deepEqual(v.get('fs'), new Set([3]));
    assert.deepEqual([...(v.get('od') as Map<string, number>)], [['k', 1]]);
  });
}

test('the end offset allows reading pickles one after another', () => {
  const a = new PickleWriter().proto(2).int(1001).stop().bytes();
  const b = new PickleWriter().proto(2).str('second').stop().bytes();
  const both = Buffer.concat([a, b]);
  const first = unpickle(both, 0, { source: 's', path: 'p', globals: new Map() });
  assert.deepEqual(first, { value: 1001, end: a.length });
  assert.equal(unpickle(both, first.end, { source: 's', path: 'p', globals: new Map() }).value, 'second');
});

// CPython's output for {'conv1_1.weight': X()} where X.__reduce__ returns a dangerous callable.
const HOSTILE_CPYTHON: readonly [string, string, string][] = [
  // os.system('touch VGGFACE_PWNED'), protocol 2: os.system pickles as posix.system on Linux
  [
    'posix.system',
    'protocol 2 GLOBAL',
    '80027d7100580e000000636f6e76315f312e776569676874710163706f7369780a73797374656d0a7102581' +
      '3000000746f75636820564747464143455f50574e45447103857104527105732e',
  ],
  // builtins.eval("__import__('os').system('touch VGGFACE_PWNED')"), protocol 4
  [
    'builtins.eval',
    'protocol 4 STACK_GLOBAL',
    '8004955e000000000000007d948c0e636f6e76315f312e776569676874948c086275696c74696e73948c046576616c9493948c2e5f5f696' +
      'd706f72745f5f28276f7327292e73797374656d2827746f75636820564747464143455f50574e454427299485945294732e',
  ],
  // subprocess.Popen(['touch', 'VGGFACE_PWNED']), protocol 5
  [
    'subprocess.Popen',
    'protocol 5 STACK_GLOBAL',
    '8005954c000000000000007d948c0e636f6e76315f312e776569676874948c0a73756270726f63657373948c05506f70656' +
      'e9493945d94288c05746f756368948c0d564747464143455f50574e4544946585945294732e',
  ],
];

for (const [global, how, bytes] of HOSTILE_CPYTHON) {
  test(`a pickle that calls ${global} (CPython, ${how}) is refused, naming the global`, () => {
    assert.throws(
      () => read(hex(bytes), torchGlobals('evil.pth', 'data.pkl')),
      (err: unknown) => {
        assert.ok(err instanceof VggFaceError);
        assert.equal(err.code, 'E_UNSAFE');
        assert.match(
          err.message,
          new RegExp(
            `^test\\.pth: test\\.pkl: refusing pickle global ${global.replace('.', '\\.')}: only ` +
              'collections\\.OrderedDict, torch\\._utils\\._rebuild_tensor_v2, ' +
              '.*torch\\.FloatStorage.* may appear in ' +
              'a weight file',
          ),
        );
        return true;
      },
    );
  });
}

test('hand-made hostile globals (os.system, __builtin__.exec, nt.system, a lookalike torch name) are refused', () => {
  for (const [module, name] of [
    ['os', 'system'],
    ['__builtin__', 'exec'],
    ['nt', 'system'],
    ['torch', 'load'],
    ['torch._utils', '_rebuild_tensor_v2x'],
  ]) {
    const p = new PickleWriter().proto(2).global(module, name).str('echo hi').tuple1().reduce().stop().bytes();
    assert.throws(
      () => read(p, torchGlobals('x', 'y')),
      new RegExp(`refusing pickle global ${module.replace(/\./g, '\\.')}\\.${name}:`),
    );
  }
  // The refusal comes at the global itself, even if it is never called.
  const unused = new PickleWriter().proto(2).emptyList().global('os', 'system').stop().bytes();
  assert.throws(() => read(unused), /refusing pickle global os\.system/);
});

test('allowlisted globals are data, not code: a storage class cannot be called', () => {
  const p = new PickleWriter().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().bytes();
  assert.throws(
    () => read(p, torchGlobals('x.pth', 'data.pkl')),
    /test\.pth: test\.pkl: torch\.FloatStorage cannot be called in a weight file/,
  );
  const g = read(new PickleWriter().proto(2).global('torch', 'FloatStorage').stop().bytes(), torchGlobals('x', 'y'));
  assert.ok(g instanceof PickleGlobal);
  assert.equal(g.qualifiedName, 'torch.FloatStorage');
});

test('unknown and unsupported opcodes are refused with their byte offset', () => {
  assert.throws(
    () => read(Buffer.from([0x80, 0x02, 0xff])),
    /test\.pth: test\.pkl: unknown pickle opcode 0xff at byte 2: not a pickle, or a corrupt one/,
  );
  assert.throws(
    () => read(Buffer.from([0x80, 0x02, 0x82, 0x01])),
    /pickle opcode EXT1 at byte 2 is not supported: it needs the copyreg extension registry/,
  );
  assert.throws(
    () => read(Buffer.from("\x80\x02(cos\nsystem\nS'ls'\ni.", 'latin1')),
    /refusing pickle global os\.system/,
  );
  assert.throws(
    () => read(Buffer.from('\x80\x02(i__main__\nX\n.', 'latin1')),
    /pickle opcode INST at byte 3 is not supported: it instantiates a class by name/,
  );
  assert.throws(() => read(Buffer.from([0x80, 0x09])), /pickle protocol 9 is not supported \(2 to 5 are\)/);
});

test('truncated and malformed pickles give format errors', () => {
  const whole = new PickleWriter().proto(2).str('conv1_1.weight').stop().bytes();
  assert.throws(
    () => read(whole.subarray(0, 10)),
    (err: unknown) =>
      err instanceof TruncatedPickleError &&
      /truncated pickle: opcode BINUNICODE at byte 2 needs 14 more bytes, 3 left/.test(err.message),
  );
  assert.throws(
    () => read(whole.subarray(0, whole.length - 1)),
    /truncated pickle: opcode .* needs 1 more bytes, 0 left/,
  );
  assert.throws(
    () => read(Buffer.from([0x80, 0x02, 0x52, 0x2e])),
    /corrupt pickle: stack underflow \(opcode REDUCE at byte 2\)/,
  );
  assert.throws(
    () => read(Buffer.from([0x80, 0x02, 0x74, 0x2e])),
    /corrupt pickle: no MARK before this opcode \(opcode TUPLE at byte 2\)/,
  );
  assert.throws(() => read(Buffer.from([0x80, 0x02, 0x68, 0x07, 0x2e])), /memo entry 7 was never stored/);
  assert.throws(() => read(Buffer.from([0x80, 0x02, 0x4e, 0x4e, 0x2e])), /2 values left on the stack at STOP/);
  assert.throws(
    () => read(Buffer.from([0x80, 0x02, 0x58, 0x02, 0, 0, 0, 0xff, 0xfe, 0x2e])),
    /string is not valid UTF-8/,
  );
  assert.throws(
    () => read(Buffer.from([0x80, 0x02, 0x58, 0xff, 0xff, 0xff, 0xff])),
    /needs 4294967295 more bytes/,
    'a huge length is refused before allocating',
  );
  assert.throws(() => read(Buffer.from([0x80, 0x02, 0x4e, 0x51, 0x2e])), /unexpected persistent id/);
});
