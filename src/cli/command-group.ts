/** Commands that only gather subcommands (`vggface gallery add`, `vggface queue submit`, `vggface weights fetch`). */
import { Command } from 'commander';

export interface CommandGroup {
  readonly name: string;
  /** The line of the parent's command list. */
  readonly summary: string;
  /** The line above the subcommands in the group's own help. */
  readonly description: string;
  /** In the order of the help. */
  readonly subcommands: readonly Command[];
}

export function commandGroup(group: CommandGroup): Command {
  const cmd = new Command(group.name).summary(group.summary).description(group.description);
  for (const sub of group.subcommands) cmd.addCommand(sub);
  return cmd;
}
