/**
 * Leases are measured on a monotonic clock: a real coordinator process whose wall clock is set an hour
 * ahead, then two hours back (libfaketime, Debian package faketime, moving CLOCK_REALTIME only) neither
 * expires a holder that keeps renewing nor keeps alive one that stopped.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Clients } from '../../../common/client/connection';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { acquire, connectPlain, grant, release, renew } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { requireTool } from '../../helpers/require-tool';

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const TTL_MS = 3_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a wall-clock jump on the coordinator', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let offsetFile: string;

  before(async function () {
    requireTool(LIBFAKETIME, 'faketime');
    offsetFile = path.join(tempDir(), 'faketime');
    fs.writeFileSync(offsetFile, '+0\n');
    coordinator = await startCoordinator({
      args: ['--lease-ttl', `${TTL_MS}ms`],
      env: {
        LD_PRELOAD: LIBFAKETIME,
        FAKETIME_TIMESTAMP_FILE: offsetFile,
        FAKETIME_NO_CACHE: '1',
        // Only the wall clock moves, as when an administrator or NTP sets it.
        DONT_FAKE_MONOTONIC: '1',
      },
    });
    clients = connectPlain(coordinator.address);
  });

  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });

  it('neither expires a renewing holder when the clock jumps ahead, nor keeps a silent one when it jumps back', async () => {
    const held = await grant(clients, { host: 'host-a', kind: 'TOKEN_KIND_GUEST', vm: 'vm1', job: 'nightly' });
    const waiting = acquire(clients, { host: 'host-a', kind: 'TOKEN_KIND_HYPERVISOR', vm: 'vm2', job: 'image' });
    await waitFor(() => waiting.updates.some((u) => u.queued), 5_000, 'the hypervisor request to wait');

    fs.writeFileSync(offsetFile, '+1h\n');
    // Renew for more than two TTLs: on the wall clock, the lease would be an hour past its expiry.
    for (let i = 0; i < 7; i++) {
      await renew(clients, held);
      await sleep(TTL_MS / 3);
    }
    assert.ok(!waiting.updates.some((u) => u.granted), 'nothing granted against a holder that kept renewing');

    fs.writeFileSync(offsetFile, '-1h\n');
    // The holder goes silent: its lease must expire after one TTL, though on the wall clock it would
    // have two hours left.
    const u = await waiting.done;
    assert.ok(u.granted, 'the waiting request got the host once the silent holder expired');
    await assert.rejects(renew(clients, held), /FAILED_PRECONDITION|NOT_FOUND/);
    await release(clients, u.granted);
  });
});
