import { strict as assert } from 'node:assert';
import type { Logger } from '../../../common/util/log';
import { createCliLogger } from '../../../ctl/cli-log';
import { ProgressReporter } from '../../../ctl/commands/host-backup';
import type { Context } from '../../../ctl/context';
import { cleanDetails } from '../../../ctl/errors';
import { formatCommand } from '../../../common/util/human';
import type { Queued__Output, Token__Output } from '../../../proto/generated/headroom/v1';

const at = (h: number, m: number, s: number) => new Date(2026, 0, 15, h, m, s).getTime();
const NOW = at(12, 0, 0);

function fakeContext(json = false): { ctx: Context; stderr: string[] } {
  const stderr: string[] = [];
  const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
  const ctx = {
    coordinator: '127.0.0.1:7400',
    json,
    io: { stdout: () => {}, stderr: (t: string) => void stderr.push(t) },
    log: silent,
    now: () => NOW,
  } as unknown as Context;
  return { ctx, stderr };
}

const queued = (over: Partial<Queued__Output> = {}): Queued__Output => ({
  position: 2,
  estimatedStartUnixMs: at(12, 4, 10),
  waitingFor: '1 GUEST backup(s) running on the host',
  ...over,
});

describe('ctl host-backup progress', () => {
  it('says where it waits, when it expects to start and for what, once per change', () => {
    const { ctx, stderr } = fakeContext();
    const hooks = new ProgressReporter(ctx, { host: 'host-a', vm: 'vm-1', job: 'vzdump' }).hooks(['vzdump', '101']);
    hooks.onQueued!(queued());
    hooks.onQueued!(queued({ estimatedStartUnixMs: at(12, 4, 10) + 300 })); // same second: nothing new
    hooks.onQueued!(queued({ position: 1 }));
    assert.deepEqual(stderr, [
      'headroomctl: waiting for a HYPERVISOR token on host-a for vm-1: position 2, estimated start 12:04:10 (in 4m10s), waiting for 1 GUEST backup(s) running on the host\n',
      'headroomctl: waiting for a HYPERVISOR token on host-a for vm-1: position 1, estimated start 12:04:10 (in 4m10s), waiting for 1 GUEST backup(s) running on the host\n',
    ]);
  });

  it('says which token it got, with its fencing number and slot', () => {
    const { ctx, stderr } = fakeContext();
    const token = {
      tokenId: 'tok-1', fencing: 17, host: 'host-a', ttlMs: 30_000,
      slot: { startUnixMs: at(12, 0, 0), expectedEndUnixMs: at(12, 30, 0), windowEndUnixMs: at(13, 0, 0) },
    } as Token__Output;
    new ProgressReporter(ctx, { host: 'host-a', vm: 'vm-1', job: 'vzdump' }).hooks([]).onGranted!(token);
    assert.deepEqual(stderr, [
      'headroomctl: granted token tok-1 (fencing 17) on host-a: slot 12:00:00 → 12:30:00, window ends 13:00:00, lease 30s renewed while it runs\n',
    ]);
  });

  it('writes one JSON object per event with --json', () => {
    const { ctx, stderr } = fakeContext(true);
    const reporter = new ProgressReporter(ctx, { host: 'host-a', vm: 'vm-1', job: 'vzdump' });
    reporter.hooks(['true']).onQueued!(queued());
    reporter.finished({ status: 'succeeded', exitCode: 0, message: 'exit code 0', durationMs: 1200 });
    const events = stderr.map((l) => JSON.parse(l));
    assert.deepEqual(events[0], { event: 'queued', ...queued() });
    assert.deepEqual(events[1], { event: 'finished', status: 'succeeded', exitCode: 0, message: 'exit code 0', durationMs: 1200 });
  });

  it('says the coordinator is unreachable once, not at every retry', () => {
    const { ctx, stderr } = fakeContext();
    const hooks = new ProgressReporter(ctx, { host: 'host-a', vm: 'vm-1', job: 'j' }).hooks([]);
    const error = Object.assign(new Error('x'), { code: 14, details: 'connect ECONNREFUSED' });
    hooks.onUnreachable!({ error, attempt: 1, retryInMs: 1000, giveUpAtUnixMs: at(12, 0, 30) });
    hooks.onUnreachable!({ error, attempt: 2, retryInMs: 2000, giveUpAtUnixMs: at(12, 0, 30) });
    assert.deepEqual(stderr, [
      'headroomctl: the coordinator at 127.0.0.1:7400 is unreachable (UNAVAILABLE: connect ECONNREFUSED); retrying in 1s, giving up at 12:00:30\n',
    ]);
  });

  it('quotes a command line for messages as a shell would need it', () => {
    assert.equal(formatCommand(['sh', '-c', 'exit 3']), "sh -c 'exit 3'");
    assert.equal(formatCommand(['vzdump', '101', '--mode=snapshot', '/var/lib/vz']), 'vzdump 101 --mode=snapshot /var/lib/vz');
    assert.equal(formatCommand(['echo', "it's"]), `echo 'it'\\''s'`);
    assert.equal(formatCommand(['']), "''");
  });

  it('cleans status details into one line', () => {
    assert.equal(
      cleanDetails('No connection established. Last error: alert\n certificate required (t). Resolution note: '),
      'No connection established. Last error: alert certificate required (t)',
    );
    assert.equal(cleanDetails('no host x'), 'no host x');
  });

  it('logs shared code\'s warnings as CLI messages, hiding debug unless asked', () => {
    const lines: string[] = [];
    const log = createCliLogger('headroomctl', (l) => lines.push(l), {});
    log.warn('connecting without TLS', { address: '127.0.0.1:1' });
    log.child({ job: 'j' }).error('boom', { code: 3 });
    log.info('hidden');
    log.debug('hidden');
    assert.deepEqual(lines, [
      'headroomctl: warning: connecting without TLS (address=127.0.0.1:1)',
      'headroomctl: error: boom (job=j, code=3)',
    ]);
    const verbose: string[] = [];
    createCliLogger('headroomctl', (l) => verbose.push(l), { HEADROOM_LOG: 'debug' }).debug('shown');
    assert.deepEqual(verbose, ['headroomctl: debug: shown']);
    const quiet: string[] = [];
    createCliLogger('headroomctl', (l) => quiet.push(l), { HEADROOM_LOG: 'error' }).warn('hidden');
    assert.deepEqual(quiet, []);
  });
});
