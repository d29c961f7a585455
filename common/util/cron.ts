/**
 * Cron expressions: parsing, and the occurrences they describe in the process's local time. Pure: no I/O,
 * no clock (the caller passes the instants).
 *
 * Syntax: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first. A field is a
 * comma-separated list of `*`, `n` and `a-b`, each optionally followed by `/n` to take every n-th value
 * (`a/n` runs from a to the field's maximum); `JAN`–`DEC` and `SUN`–`SAT` in any case; day-of-week 0–7
 * (7 = Sunday); `?` is `*` in the day fields.
 * `H`, `H/n`, `H(a-b)`, `H(a-b)/n` pick a value (or a step's offset) from a hash of the seed, so jobs with
 * the same schedule spread out; `H` stays within 1–28 in day-of-month and 0–6 in day-of-week.
 * Aliases: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly.
 * Days as Vixie cron: when both day fields are restricted (neither `*` nor `?`) a day matches if either
 * does, otherwise it must match both.
 *
 * Daylight saving, on the day the offset changes. A schedule that names hours (not every hour) runs once
 * per scheduled time: a time the clock skips runs as the old offset reads it (02:30 when 02:00 jumps to
 * 03:00 runs at 03:30), a time the clock repeats runs on its first pass only. A schedule for every hour
 * follows the clock as it reads: skipped times do not happen, repeated ones happen twice. This is what
 * cron-parser 5's next() does when its search starts before the change; here next() and prev() describe
 * the same instants wherever they start.
 */

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  /** The top of the range `H` picks from: one that exists in every month and week. */
  hashMax: number;
  /** Names of the values from `min` up. */
  names?: readonly string[];
}

const FIELDS: readonly FieldSpec[] = [
  { name: 'second', min: 0, max: 59, hashMax: 59 },
  { name: 'minute', min: 0, max: 59, hashMax: 59 },
  { name: 'hour', min: 0, max: 23, hashMax: 23 },
  { name: 'day-of-month', min: 1, max: 31, hashMax: 28 },
  {
    name: 'month',
    min: 1,
    max: 12,
    hashMax: 12,
    names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
  },
  { name: 'day-of-week', min: 0, max: 7, hashMax: 6, names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] },
];

const ALIASES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 0 1 1 *',
  '@annually': '0 0 0 1 1 *',
  '@monthly': '0 0 0 1 * *',
  '@weekly': '0 0 0 * * 0',
  '@daily': '0 0 0 * * *',
  '@midnight': '0 0 0 * * *',
  '@hourly': '0 0 * * * *',
};

/** Longest day-of-month per month, February in a leap year. */
const MONTH_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const DAY_MS = 86_400_000;
/** Any satisfiable expression matches within 8 years (29 February, across 2100); searches stop past this. */
const HORIZON_MS = 9 * 366 * DAY_MS;

/** The occurrences of a cron expression, as Unix ms. */
export interface CronSchedule {
  /** The first occurrence strictly after `afterUnixMs`. */
  next(afterUnixMs: number): number;
  /** The latest occurrence at or before `atUnixMs`. */
  prev(atUnixMs: number): number;
}

/**
 * Parses `expression`; `seed` (the job's name) chooses the values of `H`. Throws an Error naming the field
 * and the problem when the expression is invalid or can never match (30 February).
 */
export function parseCron(expression: string, seed: string): CronSchedule {
  let text = expression.trim();
  if (text.startsWith('@')) {
    const alias = ALIASES[text.toLowerCase()];
    if (alias === undefined) throw new Error(`unknown alias ${text} (known: ${Object.keys(ALIASES).join(', ')})`);
    text = alias;
  }
  const raw = text === '' ? [] : text.split(/\s+/);
  if (raw.length !== 5 && raw.length !== 6) throw new Error(`has ${raw.length} fields`);
  if (raw.length === 5) raw.unshift('0');
  const values = raw.map((field, i) => parseField(field, FIELDS[i], hash(`${seed}\0${i}`)));
  const [domRestricted, dowRestricted] = [raw[3], raw[5]].map((field) => field !== '*' && field !== '?');
  // Every week has every weekday, so only day-of-month alone can rule out all days: when even its
  // smallest day is past the end of each allowed month.
  if (domRestricted && !dowRestricted && values[4].every((month) => values[3][0] > MONTH_DAYS[month])) {
    throw new Error(`never matches: month "${raw[4]}" has no day "${raw[3]}"`);
  }
  return new Cron(values, domRestricted && dowRestricted);
}

function parseField(text: string, spec: FieldSpec, hashed: number): number[] {
  const { name, min, max } = spec;
  const number = (s: string): number => {
    const named = spec.names?.indexOf(s.toUpperCase()) ?? -1;
    if (named >= 0) return min + named;
    if (spec.names && /^[A-Za-z]{3}$/.test(s)) throw new Error(`unknown ${name} name "${s}"`);
    if (!/^\d+$/.test(s)) throw new Error(`${name} "${s}" is not a number${spec.names ? ' or a name' : ''}`);
    const n = Number(s);
    if (n < min || n > max) throw new Error(`${name} ${n} is out of range ${min}-${max}`);
    return n;
  };
  const range = (s: string): [number, number] => {
    const [a, b, ...rest] = s.split('-');
    if (rest.length > 0 || b === '') throw new Error(`${name} "${s}" is not a range`);
    const lo = number(a);
    const hi = b === undefined ? lo : number(b);
    if (lo > hi)
      throw new Error(`${name} range ${s} runs backwards (write it as a list, e.g. ${a}-${max},${min}-${b})`);
    return [lo, hi];
  };
  const out = new Set<number>();
  for (const item of text.split(',')) {
    if (item === '') throw new Error(`${name} "${text}" has an empty list item`);
    const [body, stepText, ...rest] = item.split('/');
    if (rest.length > 0) throw new Error(`${name} "${item}" has more than one step`);
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText)) throw new Error(`${name} step "${stepText}" is not a number`);
      step = Number(stepText);
      if (step < 1 || step > max - min) throw new Error(`${name} step ${step} is out of range 1-${max - min}`);
    }
    if (body === '?' && !name.startsWith('day-')) throw new Error(`${name} cannot be "?" (only the day fields can)`);
    let [lo, hi] = [min, max];
    let offset = 0;
    const hashRange = /^H(?:\((.*)\))?$/i.exec(body);
    if (hashRange) {
      [lo, hi] = hashRange[1] === undefined ? [min, spec.hashMax] : range(hashRange[1]);
      if (stepText === undefined) lo = hi = lo + (hashed % (hi - lo + 1));
      else offset = hashed % Math.min(step, hi - lo + 1);
    } else if (body !== '*' && body !== '?') {
      [lo, hi] = range(body);
      if (stepText !== undefined && !body.includes('-')) hi = max;
    }
    for (let v = lo + offset; v <= hi; v += step) out.add(name === 'day-of-week' ? v % 7 : v);
  }
  return [...out].sort((a, b) => a - b);
}

/** FNV-1a, then a final mix so seeds that differ in one character still spread over small ranges. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The search works on wall-clock time written as ms (local fields read as if UTC): a calendar without
 * daylight saving, where jumping field by field is plain arithmetic. Segments then map wall time to
 * instants, one local day at a time.
 */
class Cron implements CronSchedule {
  private readonly seconds: number[];
  private readonly minutes: number[];
  private readonly hours: number[];
  private readonly daysOfMonth: number[];
  private readonly months: number[];
  private readonly daysOfWeek: number[];

  constructor(
    values: number[][],
    /** Both day fields restricted: a day matches if either matches (Vixie cron). */
    private readonly eitherDay: boolean,
  ) {
    [this.seconds, this.minutes, this.hours, this.daysOfMonth, this.months, this.daysOfWeek] = values;
  }

  next(afterUnixMs: number): number {
    let day = startOfDay(wallOf(afterUnixMs));
    for (;;) {
      const found = this.segments(day).map((s) => {
        const w = this.nextWall(Math.max(s.from, floorSecond(afterUnixMs + s.offsetMs) + 1000), s.to - 1);
        return w === undefined ? Infinity : w - s.offsetMs;
      });
      if (Math.min(...found) < Infinity) return Math.min(...found);
      const w = this.nextWall(day + DAY_MS, day + HORIZON_MS);
      if (w === undefined) throw new Error('no occurrence within 9 years');
      day = startOfDay(w);
    }
  }

  prev(atUnixMs: number): number {
    let day = startOfDay(wallOf(atUnixMs));
    for (;;) {
      const found = this.segments(day).map((s) => {
        const w = this.prevWall(Math.min(s.to - 1000, floorSecond(atUnixMs + s.offsetMs)), s.from);
        return w === undefined ? -Infinity : w - s.offsetMs;
      });
      if (Math.max(...found) > -Infinity) return Math.max(...found);
      const w = this.prevWall(day - 1000, day - HORIZON_MS);
      if (w === undefined) throw new Error('no occurrence within 9 years');
      day = startOfDay(w);
    }
  }

  /**
   * The local day starting at wall time `day` as spans [from, to) of wall time read with one UTC offset each:
   * one span, or two on a day the offset changes.
   */
  private segments(day: number): { from: number; to: number; offsetMs: number }[] {
    const end = day + DAY_MS;
    const startInstant = localMidnight(day) - 1;
    const endInstant = localMidnight(end) - 1;
    const [o1, o2] = [offsetAt(startInstant), offsetAt(endInstant)];
    if (o1 === o2) return [{ from: day, to: end, offsetMs: o1 }];
    const change = changeOfOffset(startInstant, endInstant);
    // Every hour: the clock as it reads. Named hours (module header): the old offset reads on over the
    // skipped times, and the new one starts after the repeated ones.
    const cut = change + Math.max(o1, o2);
    const [to, from] = this.hours.length === 24 ? [change + o1, change + o2] : [cut, cut];
    return [
      { from: day, to, offsetMs: o1 },
      { from, to: end, offsetMs: o2 },
    ];
  }

  private dayMatches(wall: Date): boolean {
    const dom = this.daysOfMonth.includes(wall.getUTCDate());
    const dow = this.daysOfWeek.includes(wall.getUTCDay());
    return this.eitherDay ? dom || dow : dom && dow;
  }

  /** The first matching wall time at or after `from` (whole seconds), or undefined past `limit`. */
  private nextWall(from: number, limit: number): number | undefined {
    for (let t = from; t <= limit;) {
      const d = new Date(t);
      const [y, mo, day, h, mi, s] = [
        d.getUTCFullYear(),
        d.getUTCMonth(),
        d.getUTCDate(),
        d.getUTCHours(),
        d.getUTCMinutes(),
        d.getUTCSeconds(),
      ];
      const [nh, nm, ns] = [atOrAbove(this.hours, h), atOrAbove(this.minutes, mi), atOrAbove(this.seconds, s)];
      if (!this.months.includes(mo + 1)) t = Date.UTC(y, mo + 1, 1);
      else if (!this.dayMatches(d) || nh === undefined) t = Date.UTC(y, mo, day + 1);
      else if (nh > h) t = Date.UTC(y, mo, day, nh);
      else if (nm === undefined) t = Date.UTC(y, mo, day, h + 1);
      else if (nm > mi) t = Date.UTC(y, mo, day, h, nm);
      else if (ns === undefined) t = Date.UTC(y, mo, day, h, mi + 1);
      else if (ns > s) t = Date.UTC(y, mo, day, h, mi, ns);
      else return t;
    }
    return undefined;
  }

  /** The last matching wall time at or before `from` (whole seconds), or undefined before `limit`. */
  private prevWall(from: number, limit: number): number | undefined {
    for (let t = from; t >= limit;) {
      const d = new Date(t);
      const [y, mo, day, h, mi, s] = [
        d.getUTCFullYear(),
        d.getUTCMonth(),
        d.getUTCDate(),
        d.getUTCHours(),
        d.getUTCMinutes(),
        d.getUTCSeconds(),
      ];
      const [ph, pm, ps] = [atOrBelow(this.hours, h), atOrBelow(this.minutes, mi), atOrBelow(this.seconds, s)];
      if (!this.months.includes(mo + 1)) t = Date.UTC(y, mo, 1) - 1000;
      else if (!this.dayMatches(d) || ph === undefined) t = Date.UTC(y, mo, day) - 1000;
      else if (ph < h) t = Date.UTC(y, mo, day, ph + 1) - 1000;
      else if (pm === undefined) t = Date.UTC(y, mo, day, h) - 1000;
      else if (pm < mi) t = Date.UTC(y, mo, day, h, pm + 1) - 1000;
      else if (ps === undefined) t = Date.UTC(y, mo, day, h, mi) - 1000;
      else if (ps < s) t = Date.UTC(y, mo, day, h, mi, ps);
      else return t;
    }
    return undefined;
  }
}

/** The smallest of the ascending `values` at or above `v`. */
const atOrAbove = (values: number[], v: number) => values.find((x) => x >= v);
/** The largest of the ascending `values` at or below `v`. */
function atOrBelow(values: number[], v: number): number | undefined {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] <= v) return values[i];
  return undefined;
}
const floorSecond = (ms: number) => Math.floor(ms / 1000) * 1000;
const startOfDay = (wall: number) => Math.floor(wall / DAY_MS) * DAY_MS;
/** The local clock's offset from UTC at an instant, ms (east positive). */
const offsetAt = (unixMs: number) => -new Date(unixMs).getTimezoneOffset() * 60_000;
const wallOf = (unixMs: number) => unixMs + offsetAt(unixMs);

/** The instant local midnight starts the day at wall time `day` (the first instant after it, if skipped). */
function localMidnight(day: number): number {
  const d = new Date(day);
  return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()).getTime();
}

/** The first whole second in (lo, hi] with hi's offset, given lo and hi have different ones. */
function changeOfOffset(lo: number, hi: number): number {
  const before = offsetAt(lo);
  let [l, h] = [Math.floor(lo / 1000), Math.ceil(hi / 1000)];
  while (h - l > 1) {
    const mid = Math.floor((l + h) / 2);
    if (offsetAt(mid * 1000) === before) l = mid;
    else h = mid;
  }
  return h * 1000;
}
