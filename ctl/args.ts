/**
 * headroomctl's command-line parser: long options only (`--name value` or `--name=value`), flags,
 * positionals, and everything after `--` kept verbatim for host-backup. Values are converted where they
 * are parsed, so that every mistake becomes a UsageError naming the option. Small on purpose: the CLI has
 * a dozen options and needs nothing a framework would add.
 */
import { UsageError } from '../common/util/usage-error';

/** One `--name` option. Without `parse` it is a flag (true when present); with it, it takes a value. */
export interface OptionSpec {
  /** Without the dashes: `host`, `max-guest`. */
  name: string;
  /** Placeholder for the value in help texts (`H`, `DURATION`); absent for flags. */
  value?: string;
  help: string;
  /** Converts the raw value; throws an Error saying what was expected. Absent for flags. */
  parse?: (raw: string) => unknown;
}

export interface ParseRules {
  /** Names of the positionals the command takes, in order; more is a usage error. */
  positionals?: string[];
  /** Whether the command takes a command line after `--`. */
  rest?: boolean;
}

export class ParsedArgs {
  constructor(
    private readonly values: ReadonlyMap<string, unknown>,
    readonly positionals: readonly string[],
    /** The words after `--`, or undefined when there was no `--`. */
    readonly rest: readonly string[] | undefined,
  ) {}

  has(name: string): boolean {
    return this.values.has(name);
  }

  /** The converted value of `--name`, or undefined when it was not given. */
  get<T>(name: string): T | undefined {
    return this.values.get(name) as T | undefined;
  }

  flag(name: string): boolean {
    return this.values.get(name) === true;
  }

  /** The value of a required option. Throws a UsageError naming it when missing. */
  require<T>(name: string): T {
    if (!this.values.has(name)) throw new UsageError(`missing required option --${name}`);
    return this.values.get(name) as T;
  }
}

/** True when `--help` or `-h` appears before any `--`: help wins over every other mistake on the line. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/**
 * Parses `argv` against `specs`. Throws a UsageError for an unknown option (naming it), a missing or
 * malformed value, a value given to a flag, an unexpected positional or an unexpected `--`.
 */
export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[], rules: ParseRules = {}): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, unknown>();
  const positionals: string[] = [];
  const allowed = rules.positionals ?? [];
  let rest: string[] | undefined;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      if (!rules.rest) throw new UsageError('unexpected "--": this command takes no command line');
      rest = argv.slice(i + 1);
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      const inline = eq === -1 ? undefined : arg.slice(eq + 1);
      const spec = byName.get(name);
      if (!spec) throw new UsageError(`unknown option --${name}`);
      if (!spec.parse) {
        if (inline !== undefined) throw new UsageError(`option --${name} takes no value`);
        values.set(name, true);
        continue;
      }
      let raw = inline;
      if (raw === undefined) {
        const next = argv[i + 1];
        if (next === undefined || next === '--' || (next.startsWith('--') && next.length > 2)) {
          throw new UsageError(`option --${name} needs a value (${spec.value ?? 'VALUE'})`);
        }
        raw = next;
        i++;
      }
      try {
        values.set(name, spec.parse(raw));
      } catch (err) {
        throw new UsageError(`option --${name}: ${(err as Error).message}`);
      }
      continue;
    }
    if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
      throw new UsageError(`unknown option ${arg} (options are long: --name)`);
    }
    if (positionals.length >= allowed.length) {
      const hint = rules.rest ? ' (put the command to run after "--")' : '';
      throw new UsageError(`unexpected argument "${arg}"${hint}`);
    }
    positionals.push(arg);
  }
  return new ParsedArgs(values, positionals, rest);
}

// Value converters for OptionSpec.parse. Each throws an Error that says what it expected.

export function parseString(raw: string): string {
  if (raw === '') throw new Error('expected a non-empty value');
  return raw;
}

/** Any text, including empty (a reason may be cleared). */
export function parseText(raw: string): string {
  return raw;
}

/** A whole number 0..2^32-1 (a uint32 on the wire). */
export function parseUint32(raw: string): number {
  if (!/^\d+$/.test(raw)) throw new Error(`expected a whole number >= 0, got "${raw}"`);
  const n = Number(raw);
  if (n > 0xffff_ffff) throw new Error(`${raw} is too large (at most ${0xffff_ffff})`);
  return n;
}

/** A positive whole number that fits an int32 on the wire. */
export function parsePositiveInt(raw: string): number {
  const n = parseUint32(raw);
  if (n < 1 || n > 0x7fff_ffff) throw new Error(`expected a whole number from 1 to ${0x7fff_ffff}, got "${raw}"`);
  return n;
}

/** A whole number that fits an int32, sign allowed. */
export function parseInt32(raw: string): number {
  if (!/^[+-]?\d+$/.test(raw)) throw new Error(`expected a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < -0x8000_0000 || n > 0x7fff_ffff) throw new Error(`${raw} is out of range (int32)`);
  return n;
}

/** A whole percentage, 0..100. */
export function parsePercent(raw: string): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(n <= 100)) throw new Error(`expected a whole number from 0 to 100, got "${raw}"`);
  return n;
}

export function parseBool(raw: string): boolean {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new Error(`expected true or false, got "${raw}"`);
}
