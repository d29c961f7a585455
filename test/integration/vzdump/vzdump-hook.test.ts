/**
 * examples/vzdump/headroom-vzdump-hook against a real coordinator, run exactly as vzdump runs it
 * (vzdump-emulation.ts): arguments, bare environment, output read to the end. The hook calls the real
 * headroomctl, whose background holders keep the tokens between phases.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Clients, unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { connectPlain, grant, release } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import {
  type InstalledHook,
  type VzdumpJob,
  installHook,
  killHolders,
  killHooks,
  runHook,
  startDyingVzdump,
  startHook,
} from './vzdump-emulation';

const HOST = 'pve-1';
const JOB: VzdumpJob = { storage: 'local', dumpdir: '/var/lib/vz/dump' };
const task = (vmid: number, extra: { target?: string } = {}) => ({
  mode: 'snapshot' as const,
  vmid,
  vmtype: 'qemu' as const,
  hostname: `vm${vmid}`,
  ...extra,
});

describe('vzdump hook script (run as vzdump runs it)', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let hook: InstalledHook;
  /** The process group of a stand-in vzdump still running. */
  let dying: number | undefined;

  const tokenList = () =>
    unary<v1.ListTokensRequest, v1.ListTokensResponse__Output>(clients.admin.ListTokens.bind(clients.admin), {
      host: HOST,
    });
  const activeTokens = async () => (await tokenList()).active;
  const history = async () =>
    (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { host: HOST, limit: 1000 },
      )
    ).events;
  const event = async (type: v1.HistoryEventType__Output, tokenId: string) => {
    const found = (await history()).find((e) => e.type === type && e.tokenId === tokenId);
    assert.ok(found, `no ${type} event for token ${tokenId}`);
    return found;
  };

  before(async () => {
    coordinator = await startCoordinator({ host: HOST });
    clients = connectPlain(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });
  beforeEach(() => {
    hook = installHook({ HEADROOM_COORDINATOR: coordinator.address, HEADROOM_HOST: HOST });
  });
  afterEach(() => {
    if (dying !== undefined) process.kill(-dying, 'SIGKILL');
    dying = undefined;
    killHooks();
    killHolders(hook.stateDir);
  });

  it('holds a HYPERVISOR token around each guest of a two-VM job, waiting for a guest backup to end first', async () => {
    const start = await runHook(hook.script, 'job-start', JOB);
    assert.equal(start.code, 0, start.output);

    const start101 = await runHook(hook.script, 'backup-start', JOB, task(101));
    assert.equal(start101.code, 0, start101.output);
    const held = await activeTokens();
    assert.deepEqual(
      held.map((t) => [t.kind, t.vm, t.job]),
      [['TOKEN_KIND_HYPERVISOR', '101', 'vzdump']],
    );

    const end101 = await runHook(
      hook.script,
      'backup-end',
      JOB,
      task(101, { target: '/var/lib/vz/dump/vzdump-qemu-101.vma.zst' }),
    );
    assert.equal(end101.code, 0, end101.output);
    // A hold does not see what vzdump wrote: unknown, not 0.
    assert.match(
      (await event('HISTORY_EVENT_TYPE_RELEASED', held[0].tokenId)).detail,
      /^success, exit 0, bytes unknown, /,
    );
    assert.deepEqual(await activeTokens(), []);

    // A guest backup runs on the host: backup-start 102 must not return (vzdump must not snapshot) before it ends.
    const guestToken = await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: HOST, vm: 'web', job: 'restic' });
    const order: string[] = [];
    const start102 = startHook(hook.script, 'backup-start', JOB, task(102));
    void start102.done.then(() => order.push('hook returned'));
    await waitFor(
      () => /waiting for a HYPERVISOR token on pve-1 for 102: queue position 1/.test(start102.output()),
      20_000,
      'backup-start 102 queued',
    );
    order.push('guest releasing');
    await release(clients, guestToken);
    const started102 = await start102.done;
    assert.equal(started102.code, 0, started102.output);
    assert.deepEqual(order, ['guest releasing', 'hook returned']);
    const [token102] = await activeTokens();
    assert.equal(token102.vm, '102');
    assert.ok(
      (await event('HISTORY_EVENT_TYPE_RELEASED', guestToken.tokenId)).seq <
        (await event('HISTORY_EVENT_TYPE_GRANTED', token102.tokenId)).seq,
    );

    const abort102 = await runHook(hook.script, 'backup-abort', JOB, task(102));
    assert.equal(abort102.code, 0, abort102.output);
    assert.match((await event('HISTORY_EVENT_TYPE_RELEASED', token102.tokenId)).detail, /^failure, .*aborted/);

    const end = await runHook(hook.script, 'job-end', JOB);
    assert.equal(end.code, 0, end.output);
    assert.deepEqual(await activeTokens(), []);
    assert.deepEqual(
      fs.readdirSync(hook.stateDir).filter((f) => f.endsWith('.json')),
      [],
    );
  });

  it('job-end releases, as a failure, a token that vzdump left held, and says so', async () => {
    assert.equal((await runHook(hook.script, 'job-start', JOB)).code, 0);
    const started = await runHook(hook.script, 'backup-start', JOB, task(103));
    assert.equal(started.code, 0, started.output);
    const [token] = await activeTokens();

    const end = await runHook(hook.script, 'job-end', JOB);
    assert.equal(end.code, 0, end.output);
    assert.match(end.output, /still held for VM 103/);
    assert.deepEqual(await activeTokens(), []);
    assert.match(
      (await event('HISTORY_EVENT_TYPE_RELEASED', token.tokenId)).detail,
      /^failure, .*still held at job-end/,
    );
  });

  it('a token revoked mid-backup is recorded by its holder, and backup-end fails saying it was lost', async () => {
    const started = await runHook(hook.script, 'backup-start', JOB, task(104));
    assert.equal(started.code, 0, started.output);
    const [token] = await activeTokens();
    await unary(clients.admin.RevokeToken.bind(clients.admin), {
      tokenId: token.tokenId,
      reason: 'storage maintenance',
    });
    const stateFile = path.join(hook.stateDir, '104.json');
    await waitFor(() => /"phase":"lost"/.test(fs.readFileSync(stateFile, 'utf8')), 20_000, 'holder records the loss');
    assert.match(
      fs.readFileSync(`${stateFile}.log`, 'utf8'),
      /HYPERVISOR token lost while the backup runs.*storage maintenance/,
    );

    const end = await runHook(hook.script, 'backup-end', JOB, task(104));
    assert.notEqual(end.code, 0);
    assert.match(end.output, /was lost while it was held: revoked by the coordinator: storage maintenance/);
    assert.match(end.output, /not held to the end/);
  });

  it('releases the token as a failure when vzdump dies without calling backup-end', async () => {
    const vzdump = startDyingVzdump(hook.script, JOB, task(106));
    dying = vzdump.pid;
    await vzdump.started;
    const [token] = await activeTokens();
    assert.equal(token.vm, '106');
    process.kill(-vzdump.pid, 'SIGKILL');
    dying = undefined;
    await waitFor(async () => (await activeTokens()).length === 0, 20_000, 'token released');
    assert.match(
      (await event('HISTORY_EVENT_TYPE_RELEASED', token.tokenId)).detail,
      /^failure, .*the backup tool\) ended without a release/,
    );
  });

  it('withdraws the request when vzdump dies while backup-start waits', async () => {
    const guestToken = await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: HOST, vm: 'web', job: 'restic' });
    const vzdump = startDyingVzdump(hook.script, JOB, task(107));
    dying = vzdump.pid;
    const queuedVms = async () => (await tokenList()).queued.map((q) => q.request?.vm);
    await waitFor(async () => (await queuedVms()).includes('107'), 20_000, 'the request for 107 queued');
    process.kill(-vzdump.pid, 'SIGKILL');
    dying = undefined;
    await waitFor(async () => (await queuedVms()).length === 0, 20_000, 'the request withdrawn');
    await release(clients, guestToken);
    assert.deepEqual(
      (await history()).filter((e) => e.vm === '107' && e.type === 'HISTORY_EVENT_TYPE_GRANTED'),
      [],
    );
    assert.deepEqual(await activeTokens(), []);
  });

  it('refuses a config file with an unknown key, naming the file and the line', async () => {
    const conf = path.join(path.dirname(hook.script), 'headroom-vzdump-hook.conf');
    fs.appendFileSync(conf, 'HEADROOM_COORDINATR=127.0.0.1:1\n');
    const lines = fs.readFileSync(conf, 'utf8').trimEnd().split('\n').length;
    const result = await runHook(hook.script, 'job-start', JOB);
    assert.equal(result.code, 1);
    assert.match(result.output, new RegExp(`headroom-vzdump-hook.conf:${lines}: unknown key 'HEADROOM_COORDINATR'`));
  });

  it('fails backup-start with a clear error when headroomctl cannot be found', async () => {
    const conf = path.join(path.dirname(hook.script), 'headroom-vzdump-hook.conf');
    const missing = path.join(tempDir(), 'no-headroomctl');
    fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace(/^HEADROOM_CTL=.*$/m, `HEADROOM_CTL=${missing}`));
    const result = await runHook(hook.script, 'backup-start', JOB, task(105));
    assert.equal(result.code, 1);
    assert.match(result.output, /cannot run headroomctl .*set HEADROOM_CTL in /);
  });
});
