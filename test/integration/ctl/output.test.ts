/**
 * What headroomctl and headroom-agent print (issue 15, point 13), through the real executables: history's
 * filters (applied by the coordinator), its dates, its DETAIL cut to the terminal unless --wide, ISO times
 * in --json, and `check`'s next runs with each job's command as written.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import type { Clients } from '../../../common/client/connection';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { startAgent, waitFor, writeConfig } from '../agent/processes';
import { acquire, killAll, release, renew, runCtl, testClients } from './ctl-process';

const DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;

/** The rows of a history table as [time, type, host, vm] (the time is two words: date and time). */
function rows(stdout: string): string[][] {
  return stdout
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((l) => {
      const [date, time, type, host, vm] = l.split(/\s+/);
      return [`${date} ${time}`, type, host, vm];
    });
}

describe('headroomctl and headroom-agent output', function () {
  this.timeout(60_000);

  let coordinator: RunningCoordinator;
  let clients: Clients;
  const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args], { COLUMNS: '150' });

  before(async () => {
    coordinator = await startCoordinator({ host: 'host-a', defaultStartPolicy: true });
    clients = testClients(coordinator.address);
  });

  after(async () => {
    await killAll();
    clients.close();
    await coordinator.kill();
  });

  it('filters history by VM, type and time on the coordinator, and hides RENEWED unless asked', async () => {
    // Two VMs, each GRANTED, RENEWED twice, RELEASED: vm-a first, vm-b after a point in time we note.
    const a = await acquire(clients, { kind: 'GUEST', vm: 'vm-a', job: 'restic' });
    await renew(clients, a);
    await renew(clients, a);
    await release(clients, a);
    const first = JSON.parse((await ctl('history', '--json', '--all')).stdout).events;
    const between = Math.max(...first.map((e: { atUnixMs: number }) => e.atUnixMs)) + 1;
    // The next events must be later than `between` by the coordinator's clock (the same machine's).
    while (Date.now() <= between) await new Promise((r) => setImmediate(r));
    const b = await acquire(clients, { kind: 'GUEST', vm: 'vm-b', job: 'borg' });
    await renew(clients, b);
    await renew(clients, b);
    await release(clients, b);

    const types = (r: { stdout: string }) => rows(r.stdout).map(([, type, , vm]) => `${type} ${vm}`);
    const plain = await ctl('history', '--type', 'GRANTED,RENEWED,RELEASED,DENIED');
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(types(plain), [
      'GRANTED vm-a',
      'RENEWED vm-a',
      'RENEWED vm-a',
      'RELEASED vm-a',
      'GRANTED vm-b',
      'RENEWED vm-b',
      'RENEWED vm-b',
      'RELEASED vm-b',
    ]);
    assert.ok(
      rows(plain.stdout).every(([time]) => DATE_TIME.test(time)),
      `every row has its date:\n${plain.stdout}`,
    );

    const byDefault = await ctl('history');
    assert.deepEqual(
      types(byDefault).filter((t) => !t.startsWith('POLICY_CHANGED')),
      ['GRANTED vm-a', 'RELEASED vm-a', 'GRANTED vm-b', 'RELEASED vm-b'],
      'RENEWED hidden by default',
    );
    assert.deepEqual(types(await ctl('history', '--vm', 'vm-b')), ['GRANTED vm-b', 'RELEASED vm-b']);
    assert.deepEqual(types(await ctl('history', '--type', 'renewed', '--vm', 'vm-a')), [
      'RENEWED vm-a',
      'RENEWED vm-a',
    ]);
    assert.equal(types(await ctl('history', '--all', '--vm', 'vm-a')).length, 4, 'RENEWED with --all');
    const since = new Date(between).toISOString();
    assert.deepEqual(types(await ctl('history', '--since', since, '--type', 'GRANTED,RELEASED')), [
      'GRANTED vm-b',
      'RELEASED vm-b',
    ]);
    assert.deepEqual(types(await ctl('history', '--since', '1h', '--type', 'GRANTED')), [
      'GRANTED vm-a',
      'GRANTED vm-b',
    ]);
    // --limit counts the events asked for: the filters apply before it, on the coordinator.
    assert.deepEqual(types(await ctl('history', '--type', 'GRANTED', '--limit', '1')), ['GRANTED vm-b']);

    const json = JSON.parse((await ctl('history', '--json', '--vm', 'vm-a', '--type', 'GRANTED')).stdout).events;
    assert.equal(json.length, 1);
    assert.equal(json[0].at, new Date(json[0].atUnixMs).toISOString(), 'ISO 8601 beside the number');

    const typo = await ctl('history', '--type', 'GRANTD');
    assert.equal(typo.code, 64);
    assert.match(typo.stderr, /--type: unknown event type "GRANTD" \(did you mean GRANTED\?\)/);
  });

  it('refuses history filters it cannot apply with INVALID_ARGUMENT naming the field', async () => {
    const list = (request: object) =>
      new Promise<grpc.ServiceError>((resolve, reject) =>
        clients.admin.ListHistory(request, (err: grpc.ServiceError | null) =>
          err ? resolve(err) : reject(new Error(`accepted ${JSON.stringify(request)}`)),
        ),
      );
    const unspecified = await list({ types: ['HISTORY_EVENT_TYPE_UNSPECIFIED'] });
    assert.equal(unspecified.code, grpc.status.INVALID_ARGUMENT);
    assert.match(unspecified.details, /^types: must be HISTORY_EVENT_TYPE_GRANTED, /);
    const twice = await list({ types: ['HISTORY_EVENT_TYPE_GRANTED', 'HISTORY_EVENT_TYPE_GRANTED'] });
    assert.equal(twice.code, grpc.status.INVALID_ARGUMENT);
    assert.match(twice.details, /^types: names a type twice/);
    const future = await list({ sinceUnixMs: Date.UTC(2300, 0, 1) });
    assert.equal(future.code, grpc.status.INVALID_ARGUMENT);
    assert.match(future.details, /^since_unix_ms: must be an integer from 0 to /);
  });

  it('cuts DETAIL to the terminal width with an ellipsis, and prints it whole with --wide or into a pipe', async () => {
    const token = await acquire(clients, { kind: 'HYPERVISOR', vm: 'vm-wide', job: 'j' });
    await new Promise((resolve, reject) =>
      clients.token.Release(
        {
          tokenId: token.tokenId,
          fencing: token.fencing,
          outcome: { success: false, exitCode: 3, message: `a long message ${'x'.repeat(150)} that ends here` },
        },
        (err: Error | null) => (err ? reject(err) : resolve(undefined)),
      ),
    );
    const cut = await ctl('history', '--vm', 'vm-wide', '--type', 'RELEASED');
    const [cutRow] = cut.stdout.trimEnd().split('\n').slice(1);
    assert.equal([...cutRow].length, 150, cutRow);
    assert.ok(cutRow.endsWith('…'), cutRow);
    const wide = await ctl('history', '--vm', 'vm-wide', '--type', 'RELEASED', '--wide');
    const [wideRow] = wide.stdout.trimEnd().split('\n').slice(1);
    assert.ok(wideRow.endsWith('that ends here'), wideRow);
    assert.ok(wideRow.startsWith(cutRow.slice(0, -1)), 'the same row, whole');
    // Into a pipe with no $COLUMNS (a script, grep, a log), nothing is cut.
    const piped = await runCtl(
      ['--coordinator', coordinator.address, 'history', '--vm', 'vm-wide', '--type', 'RELEASED'],
      { COLUMNS: '' },
    );
    assert.equal(piped.stdout.trimEnd().split('\n')[1], wideRow);
  });

  it("headroom-agent check prints each job's command as written and its next three runs", async () => {
    const config = writeConfig(
      'jobs:\n' +
        '  - name: tar-data\n' +
        '    schedule: "0 3 * * *"\n' +
        '    window: 50s\n' +
        '    expectedDuration: 10s\n' +
        '    command: [tar, -czf, /backup/data.tgz, "/srv/my data"]\n',
    );
    const check = startAgent(['check', '--config', config]);
    assert.equal(await check.exited, 0, check.stderr());
    const stdout = check.stdout();
    assert.match(stdout, /^ {2}tar-data: tar -czf \/backup\/data\.tgz '\/srv\/my data'$/m);
    const m = /^ {4}schedule 0 3 \* \* \*, window 50s; next runs (.*)$/m.exec(stdout);
    assert.ok(m, stdout);
    const runs = m[1].split(', ');
    assert.equal(runs.length, 3, stdout);
    // Daily at 03:00: at most one of them is today (time only); the others carry their date.
    for (const r of runs) assert.match(r, /^(\d{4}-\d{2}-\d{2} )?03:00:00$/);
    assert.ok(runs.filter((r) => r.includes('-')).length >= 2, stdout);
  });

  it('headroom-agent exec says what it waits for while it waits, then the slot it got', async () => {
    // Not renewed: its lease must outlast the wait below on a busy machine, or it expires under the test.
    const holder = await acquire(clients, { kind: 'HYPERVISOR', vm: 'vm-holder', job: 'vzdump', ttlMs: 600_000 });
    const exec = startAgent(
      ['exec', '--job', 'nightly', '--coordinator', coordinator.address, '--vm', 'vm-waits', '--', 'true'],
      { env: { HEADROOM_LOG: 'error' } },
    );
    await waitFor(
      'exec to say what it waits for',
      () =>
        /^headroom-agent: job nightly is waiting for a GUEST token: queue position 1, a HYPERVISOR backup of vm-holder holds the host; planned start (\d{4}-\d{2}-\d{2} )?\d\d:\d\d:\d\d \((in [\dhms]+|now)\)$/m.test(
          exec.stderr(),
        ),
      30_000,
    ).finally(() => release(clients, holder));
    assert.equal(await exec.exited, 0, exec.stderr());
    assert.match(
      exec.stderr(),
      /^headroom-agent: granted token \S+ \(fencing \d+\) on host-a at \d\d:\d\d:\d\d: planned start \d\d:\d\d:\d\d, .*lease 30s renewed while it runs; running true$/m,
    );
  });
});
