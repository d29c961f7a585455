/**
 * Reading a configuration file against its zod schema, and the pieces those schemas are built from. Every
 * problem is collected before failing, and each names the file, the key path and what was expected. The
 * same schemas are published as JSON Schema (docs/schemas/, scripts/gen-schemas.js) for editors.
 */
import * as fs from 'node:fs';
import * as YAML from 'yaml';
import { z } from 'zod';
import { ConfigError, type ConfigProblem } from './config-error';
import { parseByteRate } from './byte-rate';
import { DURATION_SYNTAX, formatDuration, parseDuration } from './duration';

/** Largest value of the uint32 millisecond fields on the wire (about 49 days). */
export const MAX_UINT32 = 0xffffffff;

export const show = (v: unknown): string =>
  typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));

/** The message for a value that is not `what`: `missing (expected …)` when absent, else `expected …, got …`. */
export function expected(what: string): (issue: { input?: unknown }) => string {
  return (issue) =>
    issue.input === undefined ? `missing (expected ${what})` : `expected ${what}, got ${show(issue.input)}`;
}

/** `"a", "b" or "c"`. */
export function alternatives(values: readonly string[]): string {
  const quoted = values.map((v) => `"${v}"`);
  return quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}` : quoted[0];
}

/** A mapping of these keys only: an unknown key (a typo, most often) is named with the keys expected. */
export function mapping<T extends z.core.$ZodLooseShape>(
  shape: T,
  what = `a mapping with ${Object.keys(shape).join(', ')}`,
) {
  const notMapping = expected(what);
  const unknown = `unknown key (expected one of: ${Object.keys(shape).join(', ')})`;
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? unknown : notMapping(issue)),
  });
}

export const text = (what = 'a string') => z.string({ error: expected(what) });
export const flag = () => z.boolean({ error: expected('true or false') });
/** A check that a list's entries have distinct names: a repeat is reported at its `name`, "used by another <what>". */
export function uniqueNames(what: string) {
  return across<unknown[]>((items, _fine, report) => {
    const names = new Set<string>();
    items.forEach((item, i) => {
      const name = (item as { name?: unknown })?.name;
      if (typeof name !== 'string') return;
      if (names.has(name)) report([i, 'name'], `"${name}" is used by another ${what}`);
      else names.add(name);
    });
  });
}

/** Bytes per second as people write them (byte-rate.ts): `200MiB/s`, `500K`, or a plain number. */
export const byteRate = () =>
  z
    .union([z.string(), z.number()], { error: expected('bytes per second such as 500K, 10MiB or 1G') })
    .transform((v, ctx) => {
      try {
        return parseByteRate(String(v));
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message, input: v });
        return z.NEVER;
      }
    });
export const absolutePath = (what = 'an absolute path') =>
  text(what).refine((v) => v.startsWith('/'), { error: expected(what) });

export function integer(min: number, max: number) {
  const error = expected(`an integer from ${min} to ${max}`);
  return z.int({ error }).min(min, { error }).max(max, { error });
}

export function choice<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expected(alternatives(values)) });
}

/** A check that `parse` accepts the value; what it throws (or `message` makes of it) is the problem. */
export function accepted<T>(parse: (value: T) => unknown, message = (err: Error, _value: T) => err.message) {
  return z.superRefine<T>((value, ctx) => {
    try {
      parse(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: message(err as Error, value), input: value });
    }
  });
}

/** A command as argv, never run through a shell: a list of strings whose first is not empty. */
export function argv(example: string) {
  const what = `the command as a list of strings, such as ${example}`;
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined
      ? `missing (expected ${what})`
      : `expected ${what}${typeof issue.input === 'string' ? ' (a single string is not split by a shell: write it as a list)' : ''}, got ${show(issue.input)}`;
  return z
    .array(z.string({ error: expected('a string') }), { error })
    .refine((c) => c.length > 0 && c[0] !== '', { error });
}

/** What parseDuration accepts, for editors only (it also takes upper case and spaces): parseDuration has the last word. */
const DURATION_PATTERN = /^(\d+|(\d+(\.\d+)?(ms|s|m|h|d))+)$/;

/** A duration ("30m", "1h30m", or a number of milliseconds) read as milliseconds, from `min` to `max`. */
export function duration({ min = 0, max = MAX_UINT32 }: { min?: number; max?: number } = {}) {
  return z
    .union([z.string().meta({ pattern: DURATION_PATTERN.source }), z.number().min(0)], {
      error: expected(DURATION_SYNTAX),
    })
    .meta({ description: DURATION_SYNTAX })
    .transform((v, ctx) => {
      let ms: number;
      try {
        ms = parseDuration(v);
      } catch {
        ctx.addIssue({ code: 'custom', message: `expected ${DURATION_SYNTAX}, got ${show(v)}`, input: v });
        return z.NEVER;
      }
      if (ms < min || ms > max) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a duration from ${formatDuration(min)} to ${formatDuration(max)}, got ${show(v)}`,
          input: v,
        });
        return z.NEVER;
      }
      return ms;
    });
}

/**
 * A check across the keys of a mapping (or the items of a list) that runs even when some of them are
 * invalid, so that every problem is reported at once. Only what `fine(key)` vouches for has been parsed;
 * anything else is still the raw input.
 */
export function across<T>(
  check: (
    value: T,
    fine: (key: string | number) => boolean,
    report: (path: (string | number)[], message: string) => void,
  ) => void,
) {
  return z.superRefine<T>(
    (value, ctx) => {
      const bad = new Set(ctx.issues.map((i) => String(i.path?.[0])));
      check(
        value,
        (key) => !bad.has(String(key)),
        (path, message) => ctx.addIssue({ code: 'custom', path, message, input: value }),
      );
    },
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );
}

/** `jobs[2].window`. */
function keyPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (s, k) => (typeof k === 'number' ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)),
    '',
  );
}

function problemsOf(issue: z.core.$ZodIssue): ConfigProblem[] {
  if (issue.code === 'unrecognized_keys')
    return issue.keys.map((k) => ({ key: keyPath([...issue.path, k]), message: issue.message }));
  return [{ key: keyPath(issue.path), message: issue.message }];
}

/** A key written with no value (`key:`) is the same as an absent key, as YAML users expect. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([, x]) => x !== null)
      .map(([k, x]) => [k, withoutNulls(x)]),
  );
}

/** Validates a parsed configuration (an empty file is an empty mapping). @throws ConfigError listing every problem. */
export function validateConfig<S extends z.ZodType>(schema: S, raw: unknown, file: string): z.output<S> {
  const result = schema.safeParse(withoutNulls(raw ?? {}));
  if (result.success) return result.data;
  throw new ConfigError(file, result.error.issues.flatMap(problemsOf));
}

/** Parses YAML text. @throws ConfigError naming the line and column of every syntax error (and duplicate key). */
export function parseConfigText(text: string, file: string): unknown {
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length === 0) return doc.toJS();
  throw new ConfigError(
    file,
    doc.errors.map((e) => {
      const before = text.slice(0, e.pos[0]).split('\n');
      return {
        key: '',
        line: before.length,
        column: before[before.length - 1].length + 1,
        message: e.message.split('\n')[0],
      };
    }),
  );
}

/** Reads a YAML configuration file. @throws ConfigError when it cannot be read or is not YAML. */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [
      { key: '', message: `cannot read the configuration (${(err as NodeJS.ErrnoException).code ?? err})` },
    ]);
  }
  return parseConfigText(text, file);
}

/**
 * The JSON Schema of a configuration file, as published in docs/schemas/: what a file may say, before
 * defaults. Draft 7, which every YAML editor plugin reads; checks across keys and on the file system are
 * the zod schema's alone.
 */
export function toJsonSchema(schema: z.ZodType, title: string): string {
  return `${JSON.stringify(z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }), null, 2).replace(/^\{/, `{\n  "title": ${JSON.stringify(title)},`)}\n`;
}
