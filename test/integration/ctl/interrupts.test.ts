import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Clients } from '../../../common/client/connection';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { acquire, killAll, release, runCtl, spawnCtl, testClients } from './ctl-process';

describe('headroomctl when interrupted or when the coordinator restarts', function () {
  this.timeout(40_000);

  let coordinator: RunningCoordinator;
  let clients: Clients;
  const extra: { clients: Clients[]; coordinators: RunningCoordinator[] } = { clients: [], coordinators: [] };

  beforeEach(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
    clients = testClients(coordinator.address);
  });

  afterEach(async () => {
    await killAll();
    clients.close();
    extra.clients.splice(0).forEach((c) => c.close());
    await Promise.all(extra.coordinators.splice(0).map((c) => c.kill()));
    await coordinator.kill();
  });

  it('Ctrl-C while host-backup waits withdraws its request and exits 130 without running the command', async () => {
    const guest = await acquire(clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' });
    const stamp = path.join(tempDir(), 'ran-at');
    const hb = spawnCtl([
      '--coordinator',
      coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-2',
      '--',
      'sh',
      '-c',
      `touch ${stamp}`,
    ]);
    await hb.waitFor('stderr', /waiting for a HYPERVISOR token/);
    hb.process.kill('SIGINT');
    const r = await hb.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /cancelled: stopped waiting for a HYPERVISOR token .*SIGINT/);
    // The coordinator learns of the cancel from the stream's reset: give it a few looks.
    const queued = async () =>
      JSON.parse((await runCtl(['--coordinator', coordinator.address, 'tokens', '--json'])).stdout).queued;
    let q = await queued();
    for (let i = 0; i < 10 && q.length > 0; i++) q = await queued();
    assert.deepEqual(q, [], 'the request was withdrawn');
    await release(clients, guest);
    assert.equal(fs.existsSync(stamp), false);
  });

  it('Ctrl-C while host-backup runs goes to the command, whose exit code it returns after releasing', async () => {
    const hb = spawnCtl([
      '--coordinator',
      coordinator.address,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-2',
      '--',
      'sh',
      '-c',
      "trap 'exit 42' INT; while :; do sleep 0.05; done",
    ]);
    await hb.waitFor('stderr', /running sh -c/);
    hb.process.kill('SIGINT');
    const r = await hb.done;
    assert.equal(r.code, 42, r.stderr);
    const tokens = JSON.parse((await runCtl(['--coordinator', coordinator.address, 'tokens', '--json'])).stdout);
    assert.deepEqual(tokens.active, [], 'the token was released');
  });

  it('history --follow picks the stream up again after the coordinator restarts, printing nothing twice', async () => {
    const follow = spawnCtl(['--coordinator', coordinator.address, 'history', '--follow', '--json']);
    const first = await acquire(clients, { kind: 'GUEST', vm: 'vm-1', job: 'restic' });
    await follow.waitFor('stdout', new RegExp(first.tokenId));

    await coordinator.kill();
    await follow.waitFor('stderr', /lost the history stream \(UNAVAILABLE/);
    // Same database, same address: what a restart by systemd looks like.
    const restarted = await startCoordinator({
      dbPath: coordinator.dbPath,
      host: 'host-a',
      args: ['--listen', coordinator.address],
    });
    extra.coordinators.push(restarted);
    const again = testClients(restarted.address);
    extra.clients.push(again);
    const second = await acquire(again, { kind: 'GUEST', vm: 'vm-2', job: 'restic' });
    await follow.waitFor('stdout', new RegExp(second.tokenId), 20_000);

    follow.process.kill('SIGINT');
    const r = await follow.done;
    assert.equal(r.code, 0, r.stderr);
    const seqs = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).seq as number);
    assert.deepEqual(
      seqs,
      [...new Set(seqs)].sort((a, b) => a - b),
      'every event once, in order',
    );
  });
});
