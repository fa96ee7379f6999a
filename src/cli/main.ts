#!/usr/bin/env node
/** The `vggface` command line. Exit codes: 0 success, 1 an input or runtime error, 2 a usage error. */
import { Command, CommanderError } from 'commander';
import { VggFaceError } from '../errors.js';
import { envValue } from '../util/env.js';
import { VERSION } from '../version.js';
import type { CommandContext } from './context.js';
import { describeCommand } from './commands/describe.js';
import { convertCommand } from './commands/convert.js';
import { inspectCommand } from './commands/inspect.js';
import { facesCommand } from './commands/faces.js';
import { verifyCommand } from './commands/verify.js';
import { evalCommand } from './commands/eval.js';
import { calibrateCommand } from './commands/calibrate.js';
import { galleryCommand } from './commands/gallery.js';
import { fidelityCommand } from './commands/fidelity.js';
import { serveCommand } from './commands/serve.js';
import { weightsCommand } from './commands/weights.js';
import { queueCommand } from './commands/queue.js';
import { workerCommand } from './commands/worker.js';

const COMMANDS: readonly ((ctx: CommandContext) => Command)[] = [
  describeCommand,
  facesCommand,
  verifyCommand,
  evalCommand,
  calibrateCommand,
  galleryCommand,
  convertCommand,
  inspectCommand,
  fidelityCommand,
  serveCommand,
  weightsCommand,
  queueCommand,
  workerCommand,
];

export function createProgram(ctx: CommandContext): Command {
  const program = new Command('vggface')
    .description('VGG-Face face descriptors on ONNX Runtime: describe, verify and search faces')
    .version(VERSION);
  for (const make of COMMANDS) program.addCommand(make(ctx));
  // Every command reports usage errors the same way: a one-line hint, exit 2, no stack.
  const configure = (c: Command) => {
    c.exitOverride()
      .showHelpAfterError('(run with --help for usage)')
      .configureOutput({ writeOut: (s) => ctx.stdout.write(s), writeErr: (s) => ctx.stderr.write(s) });
    c.commands.forEach(configure);
  };
  configure(program);
  return program;
}

export async function main(argv: string[], ctx: CommandContext): Promise<number> {
  const program = createProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.failures > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
        return 0;
      return 2;
    }
    if (err instanceof VggFaceError) {
      ctx.stderr.write(`vggface: ${err.message}\n`);
      if (envValue('debug')) ctx.stderr.write(`${err.stack}\n`);
      return err.exitCode;
    }
    ctx.stderr.write(`vggface: internal error: ${(err as Error)?.message ?? String(err)}\n`);
    if (envValue('debug')) ctx.stderr.write(`${(err as Error)?.stack}\n`);
    return 1;
  }
}

const ctx: CommandContext = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, failures: 0 };
main(process.argv.slice(2), ctx).then((code) => {
  process.exitCode = code;
});
