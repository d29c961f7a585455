/**
 * The command-line parser of the three executables (headroomctl, headroom-agent, headroom-coordinator), so
 * that they accept and refuse the same way: long options (`--name value` or `--name=value`), an optional
 * one-letter alias (`-c FILE`), flags, positionals, and everything after `--` kept verbatim. Values are
 * converted where they are parsed, so that every mistake becomes a UsageError naming the option as typed;
 * an unknown option or command comes with the nearest known one. Small on purpose: nothing a framework
 * would add is needed.
 */
import { parseFlagDuration } from './duration';
import { UsageError } from './usage-error';

/** One `--name` option. Without `parse` it is a flag (true when present); with it, it takes a value. */
export interface OptionSpec {
  /** Without the dashes: `host`, `max-guest`. */
  name: string;
  /** A one-letter alias: `c` for `-c`. */
  short?: string;
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
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const values = new Map<string, unknown>();
  const positionals: string[] = [];
  const allowed = rules.positionals ?? [];
  let rest: string[] | undefined;

  /** Stores the option's value (the next word unless given inline) and returns the index of the last word used. */
  const take = (spec: OptionSpec, typed: string, inline: string | undefined, i: number): number => {
    if (!spec.parse) {
      if (inline !== undefined) throw new UsageError(`${typed} takes no value`);
      values.set(spec.name, true);
      return i;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next === '--' || (next.startsWith('--') && next.length > 2)) {
        throw new UsageError(`${typed} needs a value (${spec.value ?? 'VALUE'})`);
      }
      raw = next;
      i++;
    }
    try {
      values.set(spec.name, spec.parse(raw));
    } catch (err) {
      throw new UsageError(`${typed}: ${(err as Error).message}`);
    }
    return i;
  };

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
      if (!spec) throw new UsageError(`unknown option --${name}${didYouMean(name, [...byName.keys()], '--')}`);
      i = take(spec, `--${name}`, inline, i);
      continue;
    }
    if (arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg)) {
      const spec = arg.length === 2 ? byShort.get(arg[1]) : undefined;
      if (!spec) throw new UsageError(`unknown option ${arg}${didYouMean(arg.slice(1), [...byName.keys()], '--')}`);
      i = take(spec, arg, undefined, i);
      continue;
    }
    if (positionals.length >= allowed.length) {
      const hint = rules.rest ? ' (put the command to run after "--")' : '';
      throw new UsageError(`unexpected argument "${arg}"${hint}`);
    }
    positionals.push(arg);
  }
  return new ParsedArgs(values, positionals, rest);
}

/**
 * Edit distance with transpositions (optimal string alignment): the number of one-letter insertions,
 * deletions, changes and swaps of neighbours from `a` to `b`. "hots" is one swap from "host".
 */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The known word nearest to a mistyped one, or undefined when none is near enough to be a likely typo:
 * one edit per three letters (rounded up), or the word a prefix of it (`--fol` for `--follow`).
 */
export function nearest(word: string, known: readonly string[]): string | undefined {
  let best: { word: string; distance: number } | undefined;
  for (const k of known) {
    const d = k.startsWith(word) && word.length >= 2 ? 0.5 : editDistance(word, k);
    if (d <= Math.ceil(word.length / 3) && (!best || d < best.distance)) best = { word: k, distance: d };
  }
  return best?.word;
}

/** " (did you mean --host?)", or "" when nothing is near. */
export function didYouMean(word: string, known: readonly string[], prefix = ''): string {
  const n = nearest(word, known);
  return n === undefined ? '' : ` (did you mean ${prefix}${n}?)`;
}

/**
 * A usage error as all three executables print it: each line prefixed with the program's name, and the
 * last one saying where the help is, so that a typo costs one line, not a screen of help.
 */
export function formatUsageError(program: string, message: string, helpCommand: string): string {
  const lines = message.split('\n').map((line) => `${program}: ${line}`);
  lines[lines.length - 1] += `; see '${helpCommand}'`;
  return `${lines.join('\n')}\n`;
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

/** `--since`: a span back from now ("2h") or a point in time. */
export type Since = { agoMs: number } | { atUnixMs: number };

const LOCAL_TIME = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?(Z|[+-]\d{2}:\d{2})?$/;

/**
 * A duration back from now ("90m", "2h", "1d") or a date and time in ISO 8601 form, local unless it names
 * its zone ("2026-12-06T03:00", "2026-12-06 03:00:00", "2026-12-06" for its midnight, "…Z", "…+01:00").
 */
export function parseSince(raw: string): Since {
  const m = LOCAL_TIME.exec(raw.trim());
  if (!m) {
    try {
      return { agoMs: parseFlagDuration(raw) };
    } catch {
      throw new Error(`expected a duration such as 30m or 2h, or a time such as 2026-12-06T03:00, got "${raw}"`);
    }
  }
  // Date.parse reads a date and time without a zone as local time, but a date alone as UTC: give it a time.
  const at = Date.parse(`${m[1]}T${m[2] ?? '00:00'}${m[3] ?? ''}`);
  if (Number.isNaN(at)) throw new Error(`"${raw}" is not a valid date and time`);
  return { atUnixMs: at };
}

/** The time `since` names, seen at `now`. */
export function sinceUnixMs(since: Since, now: number): number {
  return 'agoMs' in since ? now - since.agoMs : since.atUnixMs;
}
