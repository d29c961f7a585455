import { strict as assert } from 'node:assert';
import { CronExpressionParser } from 'cron-parser';
import fc from 'fast-check';
import { parseCron } from '../../../../common/util/cron';
import { propertyRuns } from '../../../helpers/property-runs';

/** A local time as Unix ms (the process's time zone, as cron uses). */
const local = (y: number, month: number, d: number, h = 0, mi = 0, s = 0) =>
  new Date(y, month - 1, d, h, mi, s).getTime();
const pad = (n: number) => String(n).padStart(2, '0');
/** Unix ms shown as local "YYYY-MM-DD HH:MM:SS". */
function show(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
/** The first `n` occurrences of `expression` after `from`, shown in local time. */
function take(expression: string, from: number, n: number, seed = 'job'): string[] {
  const cron = parseCron(expression, seed);
  const out: number[] = [];
  for (let t = from; out.length < n;) out.push((t = cron.next(t)));
  return out.map(show);
}

const THU_JAN_1 = local(2026, 1, 1);
const RUNS = propertyRuns(500);

describe('cron expressions', () => {
  it('steps through seconds when given 6 fields, and from minute 0 of each hour when given 5', () => {
    assert.deepEqual(take('*/20 * * * * *', local(2026, 1, 1, 10, 0, 5), 3), [
      '2026-01-01 10:00:20',
      '2026-01-01 10:00:40',
      '2026-01-01 10:01:00',
    ]);
    assert.deepEqual(take('*/15 * * * *', local(2026, 1, 1, 10, 16, 0), 3), [
      '2026-01-01 10:30:00',
      '2026-01-01 10:45:00',
      '2026-01-01 11:00:00',
    ]);
  });

  it('reads numbers, ranges, lists and the three kinds of step', () => {
    assert.deepEqual(take('0 5-9/2,30 * * * *', THU_JAN_1, 4), [
      '2026-01-01 00:05:00',
      '2026-01-01 00:07:00',
      '2026-01-01 00:09:00',
      '2026-01-01 00:30:00',
    ]);
    assert.deepEqual(take('10/20 3 * * *', THU_JAN_1, 4), [
      '2026-01-01 03:10:00',
      '2026-01-01 03:30:00',
      '2026-01-01 03:50:00',
      '2026-01-02 03:10:00',
    ]);
    assert.deepEqual(take('0 0 1,15-16 * *', THU_JAN_1, 4), [
      '2026-01-15 00:00:00',
      '2026-01-16 00:00:00',
      '2026-02-01 00:00:00',
      '2026-02-15 00:00:00',
    ]);
    assert.deepEqual(take('0 12 1 */5 *', THU_JAN_1, 3), [
      '2026-01-01 12:00:00',
      '2026-06-01 12:00:00',
      '2026-11-01 12:00:00',
    ]);
  });

  it('reads month and day names in any case, and 7 as Sunday', () => {
    assert.deepEqual(take('0 0 1 feb-MAR,Dec *', THU_JAN_1, 3), [
      '2026-02-01 00:00:00',
      '2026-03-01 00:00:00',
      '2026-12-01 00:00:00',
    ]);
    assert.deepEqual(take('0 9 * * mon-WED', THU_JAN_1, 3), [
      '2026-01-05 09:00:00',
      '2026-01-06 09:00:00',
      '2026-01-07 09:00:00',
    ]);
    for (const sunday of ['0 0 * * 0', '0 0 * * 7', '0 0 * * SUN', '0 0 * * 7/7', '0 0 ? * sun']) {
      assert.deepEqual(take(sunday, THU_JAN_1, 2), ['2026-01-04 00:00:00', '2026-01-11 00:00:00'], sunday);
    }
    assert.deepEqual(take('0 0 * * FRI-7', THU_JAN_1, 3), [
      '2026-01-02 00:00:00',
      '2026-01-03 00:00:00',
      '2026-01-04 00:00:00',
    ]);
  });

  it('matches a day on either day field when both are restricted, on both otherwise (Vixie cron)', () => {
    // January 2026: Fridays are the 2nd, 9th, 16th, 23rd and 30th.
    assert.deepEqual(take('0 0 13 * FRI', THU_JAN_1, 4), [
      '2026-01-02 00:00:00',
      '2026-01-09 00:00:00',
      '2026-01-13 00:00:00',
      '2026-01-16 00:00:00',
    ]);
    assert.deepEqual(take('0 0 13 * *', THU_JAN_1, 2), ['2026-01-13 00:00:00', '2026-02-13 00:00:00']);
    assert.deepEqual(take('0 0 13 * ?', THU_JAN_1, 2), ['2026-01-13 00:00:00', '2026-02-13 00:00:00']);
    assert.deepEqual(take('0 0 * * FRI', THU_JAN_1, 2), ['2026-01-02 00:00:00', '2026-01-09 00:00:00']);
    assert.deepEqual(take('0 0 29 2 *', THU_JAN_1, 2), ['2028-02-29 00:00:00', '2032-02-29 00:00:00']);
  });

  it('expands the aliases', () => {
    const from = local(2026, 1, 7, 10, 30); // a Wednesday
    assert.deepEqual(take('@yearly', from, 1), ['2027-01-01 00:00:00']);
    assert.deepEqual(take('@annually', from, 1), ['2027-01-01 00:00:00']);
    assert.deepEqual(take('@monthly', from, 1), ['2026-02-01 00:00:00']);
    assert.deepEqual(take('@weekly', from, 1), ['2026-01-11 00:00:00']);
    assert.deepEqual(take('@daily', from, 1), ['2026-01-08 00:00:00']);
    assert.deepEqual(take('@MIDNIGHT', from, 1), ['2026-01-08 00:00:00']);
    assert.deepEqual(take('@hourly', from, 1), ['2026-01-07 11:00:00']);
  });

  it('gives the next occurrence strictly after an instant and the previous one at or before it', () => {
    const cron = parseCron('0 30 2 * * *', 'job');
    const at = local(2026, 1, 7, 2, 30);
    assert.equal(cron.next(at), local(2026, 1, 8, 2, 30));
    assert.equal(cron.next(at - 1), at);
    assert.equal(cron.prev(at), at);
    assert.equal(cron.prev(at + 999), at);
    assert.equal(cron.prev(at - 1), local(2026, 1, 6, 2, 30));
  });

  it('refuses invalid expressions, naming the field and the problem', () => {
    const cases: [string, RegExp][] = [
      ['', /^has 0 fields$/],
      ['* * *', /^has 3 fields$/],
      ['1 2 3 4 5 6 7', /^has 7 fields$/],
      ['61 * * * *', /^minute 61 is out of range 0-59$/],
      ['0 24 * * *', /^hour 24 is out of range 0-23$/],
      ['0 0 0 * *', /^day-of-month 0 is out of range 1-31$/],
      ['0 0 * 13 *', /^month 13 is out of range 1-12$/],
      ['0 0 * * 8', /^day-of-week 8 is out of range 0-7$/],
      ['*/0 * * * *', /^minute step 0 is out of range 1-59$/],
      ['*/90 * * * *', /^minute step 90 is out of range 1-59$/],
      ['*/x * * * *', /^minute step "x" is not a number$/],
      ['1/2/3 * * * *', /^minute "1\/2\/3" has more than one step$/],
      ['0 22-2 * * *', /^hour range 22-2 runs backwards \(write it as a list, e\.g\. 22-23,0-2\)$/],
      ['1,,2 * * * *', /^minute "1,,2" has an empty list item$/],
      ['5, * * * *', /^minute "5," has an empty list item$/],
      ['0 0 * FOO *', /^unknown month name "FOO"$/],
      ['0 0 * * FUN', /^unknown day-of-week name "FUN"$/],
      ['0 JAN * * *', /^hour "JAN" is not a number$/],
      ['0 0 * * 1-', /^day-of-week "1-" is not a range$/],
      ['? * * * *', /^minute cannot be "\?" \(only the day fields can\)$/],
      ['H(50-70) * * * *', /^minute 70 is out of range 0-59$/],
      ['0 0 L * *', /^day-of-month "L" is not a number$/],
      ['@fortnightly', /^unknown alias @fortnightly \(known: @yearly, /],
      ['0 0 30 2 *', /^never matches: month "2" has no day "30"$/],
      ['0 0 31 apr,jun *', /^never matches: month "apr,jun" has no day "31"$/],
    ];
    for (const [expression, message] of cases) {
      assert.throws(
        () => parseCron(expression, 'job'),
        (err: Error) => message.test(err.message),
        expression,
      );
    }
    // Either day field can match, and every week has a Monday.
    assert.doesNotThrow(() => parseCron('0 0 30 2 MON', 'job'));
  });

  describe('H', () => {
    const fields = (ms: number) => {
      const d = new Date(ms);
      return { minute: d.getMinutes(), hour: d.getHours(), day: d.getDate(), weekday: d.getDay() };
    };

    it('picks the same values for the same seed, on every parse', () => {
      for (const expression of ['H H * * *', 'H/10 H(1-5) * * *', 'H H H * *']) {
        assert.deepEqual(take(expression, THU_JAN_1, 3, 'nightly-db'), take(expression, THU_JAN_1, 3, 'nightly-db'));
      }
    });

    it('stays in the field, the given range, and days every month has', () => {
      for (let i = 0; i < 200; i++) {
        const seed = `job-${i}`;
        const [first, second] = take('H H(2-4) H * *', THU_JAN_1, 2, seed).map((s) =>
          fields(Date.parse(s.replace(' ', 'T'))),
        );
        assert.ok(first.minute >= 0 && first.minute <= 59 && first.hour >= 2 && first.hour <= 4, seed);
        assert.ok(first.day >= 1 && first.day <= 28 && second.day === first.day, seed);
        const weekly = parseCron('0 0 * * H', seed).next(THU_JAN_1);
        assert.ok(fields(weekly).weekday <= 6 && weekly - THU_JAN_1 <= 7 * 86_400_000, seed);
      }
    });

    it('offsets a step by the hash, within the step and the range', () => {
      for (let i = 0; i < 50; i++) {
        const minutes = take('H/15 * * * *', local(2026, 1, 1, 9, 59, 59), 4, `job-${i}`).map((s) =>
          Number(s.slice(14, 16)),
        );
        assert.ok(minutes[0] < 15, `job-${i}`);
        assert.deepEqual(
          minutes,
          [0, 15, 30, 45].map((m) => m + minutes[0]),
        );
        const ranged = take('H(30-49)/10 * * * *', local(2026, 1, 1, 9, 59, 59), 2, `job-${i}`).map((s) =>
          Number(s.slice(14, 16)),
        );
        assert.ok(ranged[0] >= 30 && ranged[0] < 40 && ranged[1] === ranged[0] + 10, `job-${i}`);
      }
    });

    it('spreads jobs with the same schedule', () => {
      const minutes = new Set<number>();
      const hours = new Set<number>();
      for (let i = 0; i < 100; i++) {
        const f = fields(parseCron('H H * * *', `backup-${i}`).next(THU_JAN_1));
        minutes.add(f.minute);
        hours.add(f.hour);
      }
      // 100 uniform picks cover about 48 of 60 minutes and all but one of 24 hours.
      assert.ok(minutes.size >= 35, `only ${minutes.size} distinct minutes`);
      assert.ok(hours.size >= 18, `only ${hours.size} distinct hours`);
    });
  });

  describe('agree with cron-parser', () => {
    it('on random expressions and instants, in the time zone of the test process', () => {
      fc.assert(
        fc.property(expression, instant, (e, at) => agreesWithCronParser(e, at, true)),
        { numRuns: RUNS },
      );
    });
  });

  describe('in Europe/Paris, across daylight saving changes', () => {
    let savedTz: string | undefined;
    let savedOffset: number;
    before(() => {
      savedTz = process.env.TZ;
      savedOffset = new Date(Date.UTC(2026, 6, 1)).getTimezoneOffset();
      process.env.TZ = 'Europe/Paris';
      assert.equal(new Date(Date.UTC(2026, 6, 1)).getTimezoneOffset(), -120, 'setting TZ takes effect in this process');
    });
    after(() => {
      if (savedTz === undefined) delete process.env.TZ;
      else process.env.TZ = savedTz;
      assert.equal(new Date(Date.UTC(2026, 6, 1)).getTimezoneOffset(), savedOffset);
    });

    /** The first `n` occurrences after `from` (ISO), as ISO; Paris is UTC+1 in winter, UTC+2 in summer. */
    const utc = (expression: string, from: string, n: number) => {
      const cron = parseCron(expression, 'job');
      const out: string[] = [];
      for (let t = Date.parse(from); out.length < n;) out.push(new Date((t = cron.next(t))).toISOString());
      return out;
    };
    const prev = (expression: string, at: string) =>
      new Date(parseCron(expression, 'job').prev(Date.parse(at))).toISOString();

    // 29 March 2026: 02:00 CET jumps to 03:00 CEST (01:00Z). 25 October 2026: 03:00 CEST falls back to 02:00 CET (01:00Z).
    it('runs a time the clock skips once, as the old offset reads it, when the schedule names hours', () => {
      assert.deepEqual(utc('30 2 * * *', '2026-03-28T23:00:00Z', 2), [
        '2026-03-29T01:30:00.000Z',
        '2026-03-30T00:30:00.000Z',
      ]); // 03:30 CEST
      assert.deepEqual(utc('0,30 2 * * *', '2026-03-28T23:00:00Z', 2), [
        '2026-03-29T01:00:00.000Z',
        '2026-03-29T01:30:00.000Z',
      ]);
      // 02:30 and 03:30 are then the same instant, which is one occurrence.
      assert.deepEqual(utc('30 1-3 * * *', '2026-03-28T23:00:00Z', 3), [
        '2026-03-29T00:30:00.000Z',
        '2026-03-29T01:30:00.000Z',
        '2026-03-29T23:30:00.000Z',
      ]);
      // The same occurrences whichever instant the search starts from (cron-parser skips 03:30 from 03:10).
      assert.deepEqual(utc('30 2 * * *', '2026-03-29T01:10:00Z', 1), ['2026-03-29T01:30:00.000Z']);
      assert.equal(prev('30 2 * * *', '2026-03-29T01:45:00Z'), '2026-03-29T01:30:00.000Z');
    });

    it('runs a repeated time once, on its first pass, when the schedule names hours', () => {
      assert.deepEqual(utc('30 2 * * *', '2026-10-24T23:00:00Z', 2), [
        '2026-10-25T00:30:00.000Z',
        '2026-10-26T01:30:00.000Z',
      ]); // 02:30 CEST
      assert.deepEqual(utc('30 2 * * *', '2026-10-25T01:15:00Z', 1), ['2026-10-26T01:30:00.000Z']); // from 02:15 CET
      // cron-parser's prev() gives the second pass, 01:30Z, which its next() never does.
      assert.equal(prev('30 2 * * *', '2026-10-25T02:00:00Z'), '2026-10-25T00:30:00.000Z');
    });

    it('follows the clock as it reads when the schedule is for every hour', () => {
      // 02:30 does not happen in March, and happens twice in October.
      assert.deepEqual(utc('30 * * * *', '2026-03-28T23:45:00Z', 3), [
        '2026-03-29T00:30:00.000Z',
        '2026-03-29T01:30:00.000Z',
        '2026-03-29T02:30:00.000Z',
      ]);
      assert.deepEqual(utc('30 * * * *', '2026-10-24T23:45:00Z', 3), [
        '2026-10-25T00:30:00.000Z',
        '2026-10-25T01:30:00.000Z',
        '2026-10-25T02:30:00.000Z',
      ]);
      assert.equal(prev('30 * * * *', '2026-10-25T01:45:00Z'), '2026-10-25T01:30:00.000Z');
    });

    it('agrees with cron-parser near the changes', () => {
      fc.assert(
        fc.property(expression, nearDstChange, (e, at) => agreesWithCronParser(e, at, true)),
        { numRuns: RUNS },
      );
    });
  });
});

/** A field of random valid items: lists of values, ranges and steps, or `*` (`?` in the day fields). */
function field(
  min: number,
  max: number,
  options: { names?: readonly string[]; day?: boolean } = {},
): fc.Arbitrary<string> {
  // A value as a number, or as its name in upper or lower case.
  const style = fc.constantFrom(...(options.names ? ['number', 'upper', 'lower'] : ['number']));
  const render = (n: number, how: string) => {
    const name = options.names?.[n - min];
    if (name === undefined || how === 'number') return String(n);
    return how === 'upper' ? name : name.toLowerCase();
  };
  const value = fc.tuple(fc.integer({ min, max }), style).map(([n, how]) => render(n, how));
  const range = fc
    .tuple(fc.integer({ min, max }), fc.integer({ min, max }), style, style)
    .map(([a, b, s1, s2]) => `${render(Math.min(a, b), s1)}-${render(Math.max(a, b), s2)}`);
  const step = fc.integer({ min: 1, max: max - min });
  const item = fc.oneof(
    { weight: 4, arbitrary: value },
    { weight: 2, arbitrary: range },
    { weight: 1, arbitrary: step.map((n) => `*/${n}`) },
    { weight: 1, arbitrary: fc.tuple(range, step).map(([r, n]) => `${r}/${n}`) },
    { weight: 1, arbitrary: fc.tuple(value, step).map(([v, n]) => `${v}/${n}`) },
  );
  const list = fc.array(item, { minLength: 1, maxLength: 3 }).map((items) => items.join(','));
  return fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom('*', ...(options.day ? ['?'] : [])) },
    { weight: 3, arbitrary: list },
  );
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/**
 * Random expressions without H, with 5 or 6 fields, that both parsers accept: this leaves out never-matching
 * ones (31 April), which cron-parser finds only when searching, and lists with a value twice, which it refuses.
 */
const expression = fc
  .tuple(
    fc.option(field(0, 59)),
    field(0, 59),
    field(0, 23),
    field(1, 31, { day: true }),
    field(1, 12, { names: MONTHS }),
    field(0, 7, { names: DAYS, day: true }),
  )
  .map(([second, ...rest]) => (second === null ? rest : [second, ...rest]).join(' '))
  .filter((e) => {
    try {
      return parseCron(e, 'job') !== undefined && CronExpressionParser.parse(e) !== undefined;
    } catch {
      return false;
    }
  });

const YEAR_MS = 365 * 86_400_000;
/** Instants over 2024–2031, half of them on a whole second. */
const instant = fc
  .tuple(fc.integer({ min: Date.UTC(2024, 0, 1), max: Date.UTC(2024, 0, 1) + 8 * YEAR_MS }), fc.boolean())
  .map(([ms, whole]) => (whole ? Math.floor(ms / 1000) * 1000 : ms));

/** Instants within 36 hours of a daylight saving change in Europe (last Sunday of March or October, 01:00 UTC), 2024–2031. */
const nearDstChange = fc
  .tuple(
    fc.integer({ min: 2024, max: 2031 }),
    fc.constantFrom(2, 9),
    fc.integer({ min: -36 * 3_600_000, max: 36 * 3_600_000 }),
    fc.boolean(),
  )
  .map(([year, month, ms, whole]) => {
    const lastOfMonth = new Date(Date.UTC(year, month, 31));
    const change = Date.UTC(year, month, 31 - lastOfMonth.getUTCDay(), 1) + ms;
    return whole ? Math.floor(change / 1000) * 1000 : change;
  });

/** cron-parser's answer, or NaN where it gives up (its search is capped; it does in zones with 30-minute changes). */
function oracle(answer: () => number): number {
  try {
    return answer();
  } catch (err) {
    if (/loop limit exceeded/.test((err as Error).message)) return NaN;
    throw err;
  }
}

/** Within 3 hours of a change of the local UTC offset. */
function nearOffsetChange(ms: number): boolean {
  return new Date(ms - 3 * 3_600_000).getTimezoneOffset() !== new Date(ms + 3 * 3_600_000).getTimezoneOffset();
}

/**
 * next() and prev() equal cron-parser's, and are consecutive occurrences. With `exceptNearChanges`, results
 * within 3 hours of a daylight saving change are not compared: there cron-parser's answer depends on where
 * its search started (see the explicit tests of our rule), but ours must still be consecutive.
 */
function agreesWithCronParser(e: string, at: number, exceptNearChanges = false): void {
  const cron = parseCron(e, 'job');
  const next = cron.next(at);
  const prev = cron.prev(at);
  const theirNext = oracle(() => CronExpressionParser.parse(e, { currentDate: at }).next().getTime());
  const theirPrev = oracle(() =>
    CronExpressionParser.parse(e, { currentDate: at + 1 })
      .prev()
      .getTime(),
  );
  const compare = (ours: number, theirs: number) =>
    !Number.isNaN(theirs) && (!exceptNearChanges || ![at, ours, theirs].some(nearOffsetChange));
  if (compare(next, theirNext)) assert.equal(show(next), show(theirNext), `next of "${e}" after ${show(at)}`);
  if (compare(prev, theirPrev)) assert.equal(show(prev), show(theirPrev), `prev of "${e}" at ${show(at)}`);
  if (compare(next, theirNext)) assert.equal(next, theirNext);
  if (compare(prev, theirPrev)) assert.equal(prev, theirPrev);
  // Consecutive occurrences: nothing matches between prev and next.
  assert.equal(cron.next(prev), next, `next of "${e}" after its occurrence ${show(prev)}`);
  assert.equal(cron.prev(next), next, `prev of "${e}" at its occurrence ${show(next)}`);
}
