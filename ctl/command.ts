/**
 * The shape of one headroomctl command: its name, what it takes, its help, and how it runs. The dispatcher
 * (cli.ts) parses the command line against `options` plus the global options, and prints help and usage
 * from these fields, so the help can never drift from what is accepted.
 */
import { type OptionSpec, type ParsedArgs, parseString } from '../common/util/cli-args';
import type { Context } from './context';

export interface Command {
  /** One word, or two for a group: "policy get". */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** What follows the name in the usage line: "--host H [--reason TEXT]". */
  synopsis: string;
  /** Paragraphs printed under the usage line in `--help`. */
  description?: string;
  /** Command lines shown under Examples: in `--help` and docs/cli.md, without the program's name. */
  examples: string[];
  options: OptionSpec[];
  /** Positional arguments, by name (as in the synopsis), all required. */
  positionals?: string[];
  /** Takes a command line after `--` (host-backup). */
  rest?: boolean;
  /** Runs the command; resolves to the exit code. Throws UsageError or RpcError. */
  run(ctx: Context, args: ParsedArgs): Promise<number>;
}

/** `--host H` as most commands take it. */
export function hostOption(help = 'only this host (default: every host)'): OptionSpec {
  return { name: 'host', value: 'H', help, parse: parseString };
}

/**
 * `--host H` of a command that acts on one host: without it, the coordinator's own (its --host, by
 * default its machine's hostname), as the coordinator itself reads an empty host.
 */
export function targetHostOption(what = 'the host'): OptionSpec {
  return hostOption(`${what} (default: the coordinator's own host)`);
}
