import { strict as assert } from 'node:assert';
import { ProgressReporter } from '../../../host-backup/progress';
import type { Queued__Output, Token__Output } from '../../../proto/generated/headroom/v1';

const at = (h: number, m: number, s: number) => new Date(2026, 0, 15, h, m, s).getTime();
const NOW = at(12, 0, 0);

interface Event {
  event: string;
  data: Record<string, unknown>;
  text: string;
}

/** A reporter for host-a/vm-1 whose events are collected. */
function reporter(job = 'vzdump'): { progress: ProgressReporter; events: Event[]; texts: () => string[] } {
  const events: Event[] = [];
  const progress = new ProgressReporter({
    subject: { host: 'host-a', vm: 'vm-1', job },
    coordinator: '127.0.0.1:7400',
    now: () => NOW,
    emit: (event, data, text) => void events.push({ event, data, text }),
  });
  return { progress, events, texts: () => events.map((e) => e.text) };
}

const queued = (over: Partial<Queued__Output> = {}): Queued__Output => ({
  position: 2,
  targetFull: '',
  estimatedStartUnixMs: at(12, 4, 10),
  waitingFor: 'a GUEST backup of vm-2 holds the host',
  ...over,
});

describe('host-backup progress', () => {
  it('says where it waits, when it expects to start and for what, once per change', () => {
    const { progress, texts } = reporter();
    const hooks = progress.hooks(['vzdump', '101']);
    hooks.onQueued!(queued());
    hooks.onQueued!(queued({ estimatedStartUnixMs: at(12, 4, 10) + 300 })); // same second: nothing new
    hooks.onQueued!(queued({ position: 1 }));
    assert.deepEqual(texts(), [
      'waiting for a HYPERVISOR token on host-a for vm-1: queue position 2, a GUEST backup of vm-2 holds the host; planned start 12:04:10 (in 4m10s)',
      'waiting for a HYPERVISOR token on host-a for vm-1: queue position 1, a GUEST backup of vm-2 holds the host; planned start 12:04:10 (in 4m10s)',
    ]);
  });

  it('says which token it got, with its fencing number and slot', () => {
    const { progress, texts } = reporter();
    const token = {
      tokenId: 'tok-1',
      fencing: 17,
      host: 'host-a',
      ttlMs: 30_000,
      grantedUnixMs: at(11, 59, 58),
      slot: { startUnixMs: at(12, 0, 0), expectedEndUnixMs: at(12, 30, 0), windowEndUnixMs: at(13, 0, 0) },
    } as Token__Output;
    progress.hooks([]).onGranted!(token);
    // Without an expected duration the slot has no end to show: it is left out, not printed as start → start.
    progress.hooks([]).onGranted!({
      ...token,
      slot: { startUnixMs: at(11, 59, 58), expectedEndUnixMs: at(11, 59, 58), windowEndUnixMs: 0 },
    });
    assert.deepEqual(texts(), [
      'granted token tok-1 (fencing 17) on host-a at 11:59:58: planned start 12:00:00, expected end 12:30:00, window ends 13:00:00, lease 30s renewed while it runs',
      'granted token tok-1 (fencing 17) on host-a at 11:59:58: planned start 11:59:58, lease 30s renewed while it runs',
    ]);
  });

  it('gives each event its data, for --json', () => {
    const { progress, events } = reporter();
    progress.hooks(['true']).onQueued!(queued());
    progress.finished({ status: 'succeeded', exitCode: 0, message: 'exit code 0', durationMs: 1200 });
    assert.deepEqual(
      events.map(({ event, data }) => ({ event, ...data })),
      [
        { event: 'queued', ...queued() },
        { event: 'finished', status: 'succeeded', exitCode: 0, message: 'exit code 0', durationMs: 1200 },
      ],
    );
    assert.equal(events[1].text, 'done: exit code 0 after 1s; token not held (exit 0)');
  });

  it('says the coordinator is unreachable once, not at every retry', () => {
    const { progress, texts } = reporter('j');
    const hooks = progress.hooks([]);
    const error = Object.assign(new Error('x'), { code: 14, details: 'connect ECONNREFUSED' });
    hooks.onUnreachable!({ error, attempt: 1, retryInMs: 1000, giveUpAtUnixMs: at(12, 0, 30) });
    hooks.onUnreachable!({ error, attempt: 2, retryInMs: 2000, giveUpAtUnixMs: at(12, 0, 30) });
    assert.deepEqual(texts(), [
      'the coordinator at 127.0.0.1:7400 is unreachable (UNAVAILABLE: connect ECONNREFUSED); retrying in 1s, giving up at 12:00:30',
    ]);
  });
});
