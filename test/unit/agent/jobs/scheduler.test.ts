import { strict as assert } from 'node:assert';
import * as sinon from 'sinon';
import { createLogger } from '../../../../common/util/log';
import { JobScheduler, nextOccurrence, Occurrence, parseSchedule } from '../../../../agent/jobs/scheduler';

const T0 = Date.UTC(2026, 0, 5, 1, 59, 58, 500); // a Monday

function capture() {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: 'debug', format: 'json', write: (l) => lines.push(l) }) };
}

describe('schedules', () => {
  it('computes the next occurrence strictly after a time, with or without seconds', () => {
    const sixFields = '*/10 * * * * *';
    assert.equal(nextOccurrence(sixFields, Date.UTC(2026, 0, 1, 0, 0, 3)), Date.UTC(2026, 0, 1, 0, 0, 10));
    assert.equal(nextOccurrence(sixFields, Date.UTC(2026, 0, 1, 0, 0, 10)), Date.UTC(2026, 0, 1, 0, 0, 20));
    const every5min = nextOccurrence('*/5 * * * *', Date.UTC(2026, 0, 1, 0, 1, 0));
    assert.equal(every5min, Date.UTC(2026, 0, 1, 0, 5, 0));
  });

  it('keeps H fields stable across parses for the same job', () => {
    const a1 = nextOccurrence('H H * * *', T0, 'job-a');
    const a2 = nextOccurrence('H H * * *', T0, 'job-a');
    assert.equal(a1, a2);
  });

  it('refuses expressions with a wrong number of fields', () => {
    assert.throws(() => parseSchedule('* * *'), /has 3 fields/);
    assert.throws(() => parseSchedule('* * * * * * *'), /has 7 fields/);
    assert.doesNotThrow(() => parseSchedule('@hourly'));
  });
});

describe('JobScheduler', () => {
  let clock: sinon.SinonFakeTimers;
  let scheduler: JobScheduler<{ name: string; schedule: string; windowMs: number }> | undefined;

  beforeEach(() => {
    clock = sinon.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    scheduler?.stop();
    scheduler = undefined;
    clock.restore();
  });

  function start(jobs: { name: string; schedule: string; windowMs: number }[], maxSleepMs?: number) {
    const due: { job: string; occurrence: Occurrence; at: number }[] = [];
    const { lines, log } = capture();
    scheduler = new JobScheduler({
      jobs,
      clock: { now: () => Date.now() },
      log,
      maxSleepMs,
      onDue: (job, occurrence) => due.push({ job: job.name, occurrence, at: Date.now() }),
    });
    scheduler.start();
    return { due, lines };
  }

  it('fires each job at its scheduled second with its window', () => {
    const { due } = start([
      { name: 'fast', schedule: '*/2 * * * * *', windowMs: 1_000 },
      { name: 'slow', schedule: '*/5 * * * * *', windowMs: 3_000 },
    ]);
    clock.tick(1_499);
    assert.equal(due.length, 0);
    clock.tick(1);
    assert.equal(due.length, 2, 'both fire at 02:00:00');
    assert.deepEqual(due[0], {
      job: 'fast',
      occurrence: { scheduledAtUnixMs: T0 + 1_500, windowEndUnixMs: T0 + 2_500 },
      at: T0 + 1_500,
    });
    clock.tick(5_000);
    const fast = due.filter((d) => d.job === 'fast').map((d) => d.at - T0);
    assert.deepEqual(fast, [1_500, 3_500, 5_500]);
    const slow = due.filter((d) => d.job === 'slow');
    assert.deepEqual(
      slow.map((d) => [d.at - T0, d.occurrence.windowEndUnixMs - T0]),
      [
        [1_500, 4_500],
        [6_500, 9_500],
      ],
    );
  });

  it('never sleeps longer than maxSleepMs, so a stepped wall clock is noticed', () => {
    const { due } = start([{ name: 'hourly', schedule: '0 * * * *', windowMs: 600_000 }], 60_000);
    // The wall clock is stepped forward to 02:59:59 without timers running (as NTP would).
    clock.setSystemTime(Date.UTC(2026, 0, 5, 2, 59, 59));
    clock.tick(60_000);
    assert.equal(due.length, 1, 'the 02:00 run was missed and logged; the 03:00 one fired');
    assert.equal(due[0].occurrence.scheduledAtUnixMs, Date.UTC(2026, 0, 5, 3, 0, 0));
    assert.ok(due[0].at - due[0].occurrence.scheduledAtUnixMs < 60_000);
  });

  it('logs an occurrence whose window passed while the agent slept, and does not run it', () => {
    const { due, lines } = start([{ name: 'nightly', schedule: '0 * * * *', windowMs: 60_000 }], 60_000);
    clock.setSystemTime(Date.UTC(2026, 0, 5, 2, 5, 0)); // suspended over the 02:00 window
    clock.tick(60_000);
    assert.equal(due.length, 0);
    const missed = lines.map((l) => JSON.parse(l)).find((l) => l.msg.startsWith('missed a scheduled run'));
    assert.ok(missed, lines.join('\n'));
    assert.equal(missed.level, 'error');
    assert.equal(missed.job, 'nightly');
    assert.equal(missed.scheduledAt, '2026-01-05T02:00:00.000Z');
  });

  it('does not run the same occurrence twice when the wall clock steps back', () => {
    const { due } = start([{ name: 'fast', schedule: '*/2 * * * * *', windowMs: 1_000 }]);
    clock.tick(1_500);
    assert.equal(due.length, 1);
    clock.setSystemTime(T0); // back before the occurrence that already ran
    clock.tick(1_600);
    assert.equal(due.length, 1, 'the 02:00:00 occurrence ran once');
    clock.tick(2_000);
    assert.equal(due.length, 2);
    assert.ok(due[1].occurrence.scheduledAtUnixMs > due[0].occurrence.scheduledAtUnixMs);
  });

  it('stops firing once stopped', () => {
    const { due } = start([{ name: 'fast', schedule: '* * * * * *', windowMs: 1_000 }]);
    clock.tick(2_000);
    const n = due.length;
    scheduler!.stop();
    clock.tick(10_000);
    assert.equal(due.length, n);
  });
});
