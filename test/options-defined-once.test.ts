/**
 * Issue 15: every face and describe option is defined once (src/options.ts). For each one, the definition is
 * pinned to concrete values here, and the CLI's help and its acceptance and refusal at the range edges, the
 * library's, and the server's JSON schema (which the OpenAPI document is made of) are checked against it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Command } from 'commander';
import { describeCommand } from '../src/cli/commands/describe.js';
import { facesCommand } from '../src/cli/commands/faces.js';
import type { CommandContext } from '../src/cli/context.js';
import { faceOptions, type FaceFlags } from '../src/cli/face-options.js';
import { imageOptions, parseFlag } from '../src/cli/options.js';
import { normalizeDescribeOptions } from '../src/describe-options.js';
import { resolveAlignOptions, type AlignOptions } from '../src/face/align-transform.js';
import { resolveDetectOptions, type DetectOptions } from '../src/face/detection.js';
import { DEFAULT_MAX_PIXELS } from '../src/image/decode.js';
import { DEFAULT_MAX_PIXELS as BROWSER_MAX_PIXELS } from '../src/browser/image.js';
import { DESCRIBE_OPTIONS, FACE_OPTIONS } from '../src/options.js';
import { apiRoutes, type JsonSchema } from '../src/server/schemas.js';
import { ROOT, runCli } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: JSON schemas of any shape, checked field by field
type Json = Record<string, any>;

const ctx: CommandContext = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, failures: 0 };
const commands: Record<string, Command> = { describe: describeCommand(ctx), faces: facesCommand(ctx) };

/** A command's help as `vggface <command> --help` prints it, with the wrapping undone. */
async function cliHelp(command: string): Promise<string> {
  const r = await runCli([command, '--help']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.replace(/\s+/g, ' ');
}

/** The server's request schemas (JSON bodies) of the routes that find faces. */
const routes = apiRoutes({ maxImages: 4, metric: 'cosine' });
const body = (operationId: string): Json => routes.find((r) => r.operationId === operationId)!.body!.json as Json;
const ajv = new Ajv2020({ strict: false, allErrors: true });
const validators = Object.fromEntries(
  ['describe', 'verify', 'search', 'addFaces'].map((id) => [id, ajv.compile(body(id) as JsonSchema)]),
);
const images = (id: string) => (id === 'verify' ? [{ data: 'aGk=' }, { data: 'aGk=' }] : [{ data: 'aGk=' }]);

interface Expected {
  /** The library's name and the flag. */
  readonly name: keyof typeof FACE_OPTIONS;
  readonly flag: string;
  /** The line of --help after the flag. */
  readonly help: string;
  /** The default the library applies. */
  readonly libraryDefault: unknown;
  /** Values at the edges of the range (or the values of a one-of), accepted; just past them, refused. */
  readonly accepted: readonly string[];
  readonly refused: readonly { value: string; expected: string }[];
  /** The schema's type, range or values; undefined: not a request field. */
  readonly schema?: { type: string; minimum?: number; maximum?: number; enum?: readonly string[]; default: string };
  /** The routes whose bodies have the field. */
  readonly routes: readonly string[];
  /** The commands that have the flag. */
  readonly commands: readonly string[];
}

const ALL_ROUTES = ['describe', 'verify', 'search', 'addFaces'];
const FACE_EXPECTED: readonly Expected[] = [
  {
    name: 'align',
    flag: '--align <mode>',
    help:
      'how faces are made upright: none, eyes, 5pt (default eyes; eyes: eye line level, size from all five ' +
      'landmarks; 5pt: least-squares fit of the five landmarks; none: the box, unrotated)',
    libraryDefault: 'eyes',
    accepted: ['none', 'eyes', '5pt'],
    refused: [{ value: 'tilt', expected: 'one of none, eyes, 5pt' }],
    schema: { type: 'string', enum: ['none', 'eyes', '5pt'], default: '(default eyes;' },
    routes: ALL_ROUTES,
    commands: ['describe', 'faces'],
  },
  {
    name: 'margin',
    flag: '--margin <fraction>',
    help: 'room around the face in the crop, as a fraction of the face, 0..4 (default 0.2)',
    libraryDefault: 0.2,
    accepted: ['0', '4'],
    refused: [
      { value: '-0.01', expected: 'a number between 0 and 4' },
      { value: '4.01', expected: 'a number between 0 and 4' },
    ],
    schema: { type: 'number', minimum: 0, maximum: 4, default: '(default 0.2)' },
    routes: ALL_ROUTES,
    commands: ['describe', 'faces'],
  },
  {
    name: 'minScore',
    flag: '--min-score <score>',
    help:
      'ignore detections scored below this, 0..1 (default 0.75; 0 keeps every candidate the detector scores ' +
      'above 0: thousands per photo)',
    libraryDefault: 0.75,
    accepted: ['0', '1'],
    refused: [
      { value: '-0.01', expected: 'a number between 0 and 1' },
      { value: '1.01', expected: 'a number between 0 and 1' },
    ],
    schema: { type: 'number', minimum: 0, maximum: 1, default: '(default 0.75;' },
    routes: ALL_ROUTES,
    commands: ['describe', 'faces'],
  },
  {
    name: 'minFaceSize',
    flag: '--min-face-size <px>',
    help: 'ignore faces whose box is smaller than this, in photo pixels, 0..1000000 (default 0)',
    libraryDefault: 0,
    accepted: ['0', '1000000'],
    refused: [
      { value: '-1', expected: 'a number between 0 and 1000000' },
      { value: '1000000.5', expected: 'a number between 0 and 1000000' },
    ],
    schema: { type: 'number', minimum: 0, maximum: 1_000_000, default: '(default 0)' },
    routes: ALL_ROUTES,
    commands: ['describe', 'faces'],
  },
  {
    // The server takes the library's maximum (it had 1000 of its own): see schemas.ts.
    name: 'maxFaces',
    flag: '--max-faces <n>',
    help: 'keep at most the n largest faces of each photo, 1..100000 (default all)',
    libraryDefault: Infinity,
    accepted: ['1', '100000'],
    refused: [
      { value: '0', expected: 'an integer between 1 and 100000' },
      { value: '100001', expected: 'an integer between 1 and 100000' },
      { value: '2.5', expected: 'an integer between 1 and 100000' },
    ],
    schema: { type: 'integer', minimum: 1, maximum: 100_000, default: '(default all)' },
    routes: ['describe'],
    commands: ['describe', 'faces'],
  },
  {
    name: 'size',
    flag: '--size <px>',
    help: 'side of the square crops, in pixels, 16..4096 (default 224)',
    libraryDefault: 224,
    accepted: ['16', '4096'],
    refused: [
      { value: '15', expected: 'an integer between 16 and 4096' },
      { value: '4097', expected: 'an integer between 16 and 4096' },
    ],
    routes: [],
    commands: ['faces'],
  },
];

/** The library's resolution of one face option. */
function resolveFace(name: keyof typeof FACE_OPTIONS, value: unknown): unknown {
  if (name === 'align' || name === 'margin' || name === 'size')
    return resolveAlignOptions({ [name]: value } as AlignOptions)[name];
  return resolveDetectOptions({ [name]: value } as DetectOptions)[name as keyof DetectOptions];
}

/** The CLI's parsing of one face flag: faceOptions, or (--size, the faces command's own) its parseFlag. */
function parseFaceFlag(name: keyof typeof FACE_OPTIONS, raw: string | undefined): unknown {
  if (name === 'size') return parseFlag(FACE_OPTIONS.size, raw);
  return faceOptions({ [name]: raw } as FaceFlags)[name as keyof FaceFlags & keyof typeof FACE_OPTIONS];
}

const asValue = (spec: { kind: string }, raw: string): unknown => (spec.kind === 'oneOf' ? raw : Number(raw));

test('every face option with a flag is pinned here: the table below covers the definitions', () => {
  const flagged = Object.values(FACE_OPTIONS).filter((o) => o.flag !== undefined);
  assert.deepEqual(flagged.map((o) => o.name).sort(), FACE_EXPECTED.map((e) => e.name).sort());
  // Library-only options: their ranges and defaults, and the library at the edges.
  assert.deepEqual(
    [FACE_OPTIONS.nmsThreshold, FACE_OPTIONS.detectionSize].map((o) => [o.name, o.kind, o.min, o.max, o.default]),
    [
      ['nmsThreshold', 'number', 0, 1, 0.3],
      ['detectionSize', 'integer', 32, 8192, 1024],
    ],
  );
  assert.deepEqual(resolveDetectOptions({}), {
    minScore: 0.75,
    nmsThreshold: 0.3,
    detectionSize: 1024,
    minFaceSize: 0,
    maxFaces: Infinity,
    maxPixels: undefined,
  });
  assert.equal(resolveDetectOptions({ nmsThreshold: 1, detectionSize: 8192 }).detectionSize, 8192);
  assert.throws(() => resolveDetectOptions({ nmsThreshold: 1.01 }), {
    message: 'Expected a number between 0 and 1 for nmsThreshold but received number 1.01',
  });
  assert.throws(() => resolveDetectOptions({ detectionSize: 31 }), {
    message: 'Expected an integer between 32 and 8192 for detectionSize but received number 31',
  });
});

test('the face options: CLI help, CLI and library edges, JSON schema, all from the one definition', async () => {
  const helps = Object.fromEntries(
    await Promise.all(['describe', 'faces'].map(async (c) => [c, await cliHelp(c)] as const)),
  );
  for (const e of FACE_EXPECTED) {
    const spec = FACE_OPTIONS[e.name];
    assert.equal(spec.flag, e.flag, e.name);
    const flag = e.flag.split(' ')[0];

    // CLI help: the flag's line is the definition's description, range and default.
    for (const command of e.commands) {
      const option = commands[command].options.find((o) => o.long === flag);
      assert.ok(option, `${command} has ${flag}`);
      assert.equal(option.description, e.help, `${command} ${flag}`);
      assert.equal(option.defaultValue, undefined, `${command} ${flag}: the default is the definition's`);
      assert.ok(helps[command].includes(`${e.flag} ${e.help}`), `${command} --help shows ${flag}: ${e.help}`);
    }

    // Library and CLI: the same values accepted at the edges, the same refused past them.
    assert.deepEqual(resolveFace(e.name, undefined), e.libraryDefault, `${e.name}: the library's default`);
    assert.equal(parseFaceFlag(e.name, undefined), undefined, `CLI ${flag}: left to the library's default`);
    for (const raw of e.accepted) {
      assert.equal(resolveFace(e.name, asValue(spec, raw)), asValue(spec, raw), `library ${e.name} ${raw}`);
      assert.equal(parseFaceFlag(e.name, raw), asValue(spec, raw), `CLI ${flag} ${raw}`);
    }
    for (const { value, expected } of e.refused) {
      const v = asValue(spec, value);
      const shown = typeof v === 'number' ? `number ${v}` : JSON.stringify(v);
      assert.throws(() => resolveFace(e.name, v), {
        code: 'E_USAGE',
        message: `Expected ${expected} for ${e.name} but received ${shown}`,
      });
      assert.throws(() => parseFaceFlag(e.name, value), {
        code: 'E_USAGE',
        message: `Expected ${expected} for ${flag} but received ${JSON.stringify(value)}`,
      });
    }

    // JSON schema: type, range or values, the default in the description (no `default` keyword: fastify's ajv
    // would fill it in, also with faces "none", where detection options are refused).
    for (const id of ALL_ROUTES) {
      const property = body(id).properties[e.name] as Json | undefined;
      if (!e.routes.includes(id)) {
        assert.equal(property, undefined, `${id} has no ${e.name}`);
        continue;
      }
      const { default: shownDefault, ...type } = e.schema!;
      const { description, ...rest } = property!;
      assert.deepEqual(rest, type, `${id} ${e.name}`);
      assert.ok(String(description).includes(shownDefault), `${id} ${e.name}: ${description}`);
      const valid = validators[id];
      for (const raw of e.accepted)
        assert.ok(valid({ images: images(id), [e.name]: asValue(spec, raw) }), `${id} ${e.name} ${raw}`);
      for (const { value } of e.refused)
        assert.ok(!valid({ images: images(id), [e.name]: asValue(spec, value) }), `${id} ${e.name} ${value}`);
    }
  }
});

test('the face flags as the CLI process refuses them: exit 2 and the message of the definition', async () => {
  for (const e of FACE_EXPECTED) {
    const flag = e.flag.split(' ')[0];
    const { value, expected } = e.refused[e.refused.length - 1];
    const command = e.commands[e.commands.length - 1];
    const args = command === 'faces' ? ['faces', '-o', join(ROOT, 'tmp', 'never')] : ['describe'];
    const r = await runCli([...args, `${flag}=${value}`, 'x.jpg']);
    assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n')[0], `vggface: Expected ${expected} for ${flag} but received "${value}"`);
  }
});

test('the describe options: CLI help and edges, library edges and defaults, JSON schema', async () => {
  const o = DESCRIBE_OPTIONS;
  assert.deepEqual(
    Object.values(o).map((s) => [s.name, s.flag, s.kind, s.default]),
    [
      ['layer', '--layer <layer>', 'oneOf', 'fc7'],
      ['normalize', '--raw', 'boolean', true],
      ['fit', '--fit <mode>', 'oneOf', undefined],
      ['batchSize', '--batch <n>', 'integer', 8],
      ['maxPixels', '--max-pixels <n>', 'integer', 100_000_000],
    ],
  );
  const describe = commands.describe;
  const help = (flag: string) => describe.options.find((x) => x.long === flag)?.description;
  assert.equal(
    help('--layer'),
    'which layer: fc6, fc7, fc8 (default fc7; fc7 is the VGG-Face descriptor, fc6 the layer below it, fc8 the ' +
      'logits over the 2,622 training identities)',
  );
  assert.equal(help('--raw'), 'do not L2-normalise the vector');
  assert.equal(help('--batch'), 'images per inference call, 1..256 (default 8)');
  assert.equal(help('--max-pixels'), 'refuse images with more pixels than this (default 100000000)');
  assert.match(help('--fit')!, /^how non-square images become 224x224: crop, pad, stretch, deepface \(default crop, /);
  const printed = await cliHelp('describe');
  for (const flag of ['--layer <layer>', '--batch <n>', '--max-pixels <n>', '--fit <mode>', '--raw'])
    assert.ok(printed.includes(`${flag} ${help(flag.split(' ')[0])}`), `describe --help: ${flag}`);

  // The library: defaults and edges.
  const lib = (options: object) => normalizeDescribeOptions(options, 'crop');
  assert.deepEqual(lib({}), {
    layer: 'fc7',
    normalize: true,
    fit: 'crop',
    batchSize: 8,
    maxPixels: undefined,
    onProgress: undefined,
  });
  assert.equal(normalizeDescribeOptions({}, 'deepface').fit, 'deepface');
  assert.deepEqual(
    [lib({ batchSize: 1 }).batchSize, lib({ batchSize: 256 }).batchSize, lib({ maxPixels: 1 }).maxPixels],
    [1, 256, 1],
  );
  assert.throws(() => lib({ batchSize: 257 }), {
    message: 'Expected an integer between 1 and 256 for batchSize but received number 257',
  });
  assert.throws(() => lib({ batchSize: 0 }), { message: /between 1 and 256 for batchSize/ });
  assert.throws(() => lib({ maxPixels: 0 }), { message: /^Expected an integer between 1 and \d+ for maxPixels/ });
  assert.throws(() => lib({ layer: 'fc9' }), { message: 'Expected one of fc6, fc7, fc8 for layer but received "fc9"' });
  assert.throws(() => lib({ normalize: 'yes' }), { message: 'Expected a boolean for normalize but received "yes"' });
  assert.throws(() => lib({ fit: 'zoom' }), {
    message: 'Expected one of crop, pad, stretch, deepface for fit but received "zoom"',
  });
  // Decoding applies the maxPixels default the library leaves undefined, in Node and in the browser.
  assert.deepEqual([DEFAULT_MAX_PIXELS, BROWSER_MAX_PIXELS], [100_000_000, 100_000_000]);

  // The CLI's parsing: the same edges, errors naming the flags.
  assert.deepEqual(imageOptions({ maxPixels: '1', fit: 'deepface' }), { fit: 'deepface', maxPixels: 1 });
  assert.throws(() => imageOptions({ maxPixels: '0' }), {
    message: /^Expected an integer between 1 and \d+ for --max-pixels but received "0"$/,
  });
  assert.throws(() => imageOptions({ fit: 'zoom' }), { message: /for --fit but received "zoom"/ });
  for (const [args, message] of [
    [['--batch', '257'], 'Expected an integer between 1 and 256 for --batch but received "257"'],
    [['--batch', '0'], 'Expected an integer between 1 and 256 for --batch but received "0"'],
    [['--layer', 'fc9'], 'Expected one of fc6, fc7, fc8 for --layer but received "fc9"'],
  ] as const) {
    const r = await runCli(['describe', ...args, 'x.jpg']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.split('\n')[0], `vggface: ${message}`);
  }

  // The schema: layer and normalize with their defaults (describe only), fit's values.
  const props = body('describe').properties;
  assert.deepEqual(
    [props.layer.type, props.layer.enum, props.layer.default, props.normalize.type, props.normalize.default],
    ['string', ['fc6', 'fc7', 'fc8'], 'fc7', 'boolean', true],
  );
  assert.match(props.layer.description, /^Which layer \(default fc7; /);
  assert.equal(props.normalize.description, 'L2-normalise the vector (default true).');
  for (const id of ALL_ROUTES) {
    const fit = body(id).properties.fit;
    assert.deepEqual([fit.type, fit.enum, fit.default], ['string', ['crop', 'pad', 'stretch', 'deepface'], undefined]);
    assert.match(fit.description, /^With faces `none`: how non-square images become 224x224 \(default crop, /);
  }
});

test('the definitions are pure: options.ts imports nothing Node-specific (the browser build uses it)', () => {
  const source = readFileSync(join(ROOT, 'src', 'options.ts'), 'utf8');
  const imports = [...source.matchAll(/^import (type )?.* from '([^']+)';$/gm)].map((m) => [m[2], m[1] === 'type ']);
  assert.deepEqual(imports, [['./validate.js', false]]);
});
