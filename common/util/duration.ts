/**
 * Durations as people write them in config files and on command lines: a number is milliseconds, a string
 * is one or more `<number><unit>` parts ("500ms", "90s", "10m", "2h", "1h30m", "1d"). Shared by the agent
 * and headroomctl so that both accept exactly the same spellings.
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** What parseDuration accepts, for error messages. */
export const DURATION_SYNTAX = 'a duration such as 500ms, 90s, 10m, 2h or 1h30m (a bare number is milliseconds)';

/**
 * Parses a duration into milliseconds. Numbers (and digit-only strings) are milliseconds; strings are
 * a sequence of `<number><unit>` with units ms, s, m, h, d, largest first ("1h30m", "1.5h").
 * Throws an Error saying what was expected when the input is not a non-negative finite duration.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new Error(`expected ${DURATION_SYNTAX}, got ${input}`);
    return Math.round(input);
  }
  const text = input.trim().toLowerCase();
  if (/^\d+$/.test(text)) return Number(text);
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let lastUnit = Infinity;
  let at = 0;
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) break;
    const unit = UNIT_MS[m[2]];
    // "30m1h" or "1m1m" is almost certainly a typo; refuse it rather than guess.
    if (unit >= lastUnit)
      throw new Error(`expected ${DURATION_SYNTAX}, got "${input}" (units must go from largest to smallest)`);
    lastUnit = unit;
    total += Number(m[1]) * unit;
    at = part.lastIndex;
  }
  if (at === 0 || at !== text.length) throw new Error(`expected ${DURATION_SYNTAX}, got "${input}"`);
  return Math.round(total);
}

/**
 * A duration on a command line, where the unit must be written: "30" could mean seconds as well as
 * milliseconds, so every bare number but 0 is refused with the spellings that would be accepted.
 * Config files keep parseDuration's "a bare number is milliseconds" (YAML numbers have no unit).
 */
export function parseFlagDuration(raw: string): number {
  const text = raw.trim();
  if (/^\d+$/.test(text) && Number(text) !== 0) {
    throw new Error(`"${raw}" has no unit: write ${text}s, ${text}m or ${text}ms`);
  }
  try {
    return parseDuration(text);
  } catch {
    throw new Error(`expected a duration such as 500ms, 90s, 10m, 2h or 1h30m, got "${raw}"`);
  }
}

/**
 * Formats milliseconds for people, exactly and compactly: 1500 → "1.5s", 5400000 → "1h30m", 0 → "0s".
 * The result parses back to the same number with parseDuration.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  ms = Math.round(ms);
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['d', UNIT_MS.d],
    ['h', UNIT_MS.h],
    ['m', UNIT_MS.m],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0) {
    // Seconds keep their milliseconds as a decimal fraction ("1.25s") so the format stays exact.
    parts.push(`${rest / 1_000}s`);
  }
  return parts.join('');
}
