/**
 * The agent's commands' options, parsed by the shared parser (common/util/cli-args.ts) so that the agent
 * accepts and refuses exactly as headroomctl and the coordinator do. Every option value is kept as typed:
 * the commands convert them (exec-command.ts lists every bad one at once).
 */
import { type OptionSpec, parseArgs, parseText, wantsHelp } from '../common/util/cli-args';

/**
 * An option: `value` names what it takes (absent: a flag); `short` its one-letter alias. Their help is in
 * the command's help text (main.ts), written out for the agent's few commands.
 */
export type OptionSpecs = Record<string, { value?: string; short?: string }>;

/** The option table as the shared parser takes it. */
export function toOptionSpecs(options: OptionSpecs): OptionSpec[] {
  return Object.entries(options).map(([name, o]) => ({
    name,
    short: o.short,
    value: o.value,
    help: '',
    parse: o.value === undefined ? undefined : parseText,
  }));
}

/**
 * Parses one command's arguments. `--help` anywhere before `--` wins over every mistake on the line, as
 * in headroomctl. `positionals` names the ones the command takes; `rest` lets it take a command after `--`.
 */
export function parse(
  args: readonly string[],
  options: OptionSpecs,
  rules: { positionals?: string[]; rest?: boolean } = {},
): { values: Record<string, string | boolean | undefined>; positionals: readonly string[]; rest: readonly string[] } {
  if (wantsHelp(args)) return { values: { help: true }, positionals: [], rest: [] };
  const parsed = parseArgs(args, toOptionSpecs(options), rules);
  const values = Object.fromEntries(
    Object.keys(options)
      .filter((name) => parsed.has(name))
      .map((name) => [name, parsed.get<string | boolean>(name)]),
  );
  return { values, positionals: parsed.positionals, rest: parsed.rest ?? [] };
}
