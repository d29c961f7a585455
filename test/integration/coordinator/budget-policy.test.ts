/**
 * The budget controller's policy fields over AdminService against a real coordinator process: set and read
 * back, refused with the field named, persisted, and defaulted for a policy stored before they existed.
 */
import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { type Clients, unary } from '../../../common/client/connection';
import { type RunningCoordinator, startCoordinator } from '../../helpers/coordinator-process';
import { connectPlain, statusOf } from '../../helpers/token-client';
import { runCtl } from '../ctl/ctl-process';

const HOST = 'host-p';

const BUDGET_DEFAULTS = {
  throttleAboveCpuPercent: 60,
  pauseAboveCpuPercent: 85,
  resumeBelowCpuPercent: 50,
  throttleAboveIoBytesPerSec: 0,
  pauseAboveIoBytesPerSec: 0,
  resumeBelowIoBytesPerSec: 0,
  budgetCpuPercent: 0,
  budgetIoBytesPerSec: 0,
  throttledCpuPercent: 25,
  throttledIoBytesPerSec: 10 * 1024 * 1024,
  budgetDwellMs: 30_000,
  maxPauseMs: 600_000,
  pauseWindowGuardMs: 300_000,
  budgetMode: 'fixed',
};

/** The start policy's fields (start-gate.ts), added later still: a policy stored before them gets these too. */
const START_DEFAULTS = {
  followPlan: true,
  minStartGapMs: 60_000,
  hostBudgetCpuPercent: 0,
  hostBudgetIoBytesPerSec: 0,
  startBelowCpuPercent: 60,
  startBelowIoBytesPerSec: 0,
  hostStartBelowCpuPercent: 90,
  hostStartBelowIoBytesPerSec: 0,
  hypervisorBudgetCpuPercent: 0,
  hypervisorBudgetIoBytesPerSec: 0,
  vmStartBelow: {},
};

/** The wait signals' thresholds (load-signals.ts), added later again. */
const PRESSURE_DEFAULTS = {
  throttleAboveIoPressurePercent: 10,
  pauseAboveIoPressurePercent: 25,
  resumeBelowIoPressurePercent: 5,
  throttleAboveCpuPressurePercent: 20,
  pauseAboveCpuPressurePercent: 40,
  resumeBelowCpuPressurePercent: 10,
  throttleAboveMemoryPressurePercent: 5,
  pauseAboveMemoryPressurePercent: 15,
  resumeBelowMemoryPressurePercent: 2,
  throttleAboveDiskAwaitMs: 20,
  pauseAboveDiskAwaitMs: 50,
  resumeBelowDiskAwaitMs: 10,
  vmPressure: {},
};

describe('budget policy over AdminService', function () {
  let coordinator: RunningCoordinator;
  let clients: Clients;

  const getPolicy = () => unary(clients.admin.GetPolicy.bind(clients.admin), { host: HOST });
  const setPolicy = (fields: Record<string, unknown>) =>
    unary(clients.admin.SetPolicy.bind(clients.admin), { host: HOST, ...fields });
  const restart = async () => {
    clients.close();
    await coordinator.stop();
    coordinator = await startCoordinator({ host: HOST, dbPath: coordinator.dbPath, defaultStartPolicy: true });
    clients = connectPlain(coordinator.address);
  };

  before(async () => {
    coordinator = await startCoordinator({ host: HOST, defaultStartPolicy: true });
    clients = connectPlain(coordinator.address);
  });

  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });

  it('answers every budget field with its default on a new host', async () => {
    assert.deepEqual(await getPolicy(), {
      maxGuestTokens: 4,
      maxHypervisorTokens: 1,
      leaseTtlMs: 30_000,
      allowOverrun: false,
      reportIntervalMs: 10_000,
      ...BUDGET_DEFAULTS,
      ...START_DEFAULTS,
      ...PRESSURE_DEFAULTS,
    });
  });

  it('sets only the fields given and keeps them across a restart', async () => {
    const set = await setPolicy({
      throttleAboveIoBytesPerSec: 200 * 1024 * 1024,
      resumeBelowIoBytesPerSec: 50 * 1024 * 1024,
      maxPauseMs: 60_000,
    });
    assert.equal(set.throttleAboveIoBytesPerSec, 200 * 1024 * 1024);
    assert.equal(set.throttleAboveCpuPercent, 60);
    await restart();
    const got = await getPolicy();
    assert.deepEqual(
      [got.throttleAboveIoBytesPerSec, got.resumeBelowIoBytesPerSec, got.maxPauseMs],
      [200 * 1024 * 1024, 50 * 1024 * 1024, 60_000],
    );
  });

  it('refuses an inconsistent change with INVALID_ARGUMENT naming the field, and changes nothing', async () => {
    const before = await getPolicy();
    const s = await statusOf(setPolicy({ resumeBelowCpuPercent: 70, maxGuestTokens: 2 }));
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.match(
      s.details,
      /^resume_below_cpu_percent: resume_below_cpu_percent \(70\) must be from 1 to below throttle_above_cpu_percent \(60\)$/,
    );
    assert.equal(
      (await statusOf(setPolicy({ throttledCpuPercent: 200_000 }))).details,
      'throttled_cpu_percent: must be an integer from 0 to 102400, got 200000',
    );
    assert.deepEqual(await getPolicy(), before);
  });

  it('is set and shown by headroomctl policy', async () => {
    const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args]);
    const set = await ctl(
      'policy',
      'set',
      '--host',
      HOST,
      '--throttle-above-cpu',
      '40',
      '--resume-below-cpu',
      '30',
      '--throttled-io',
      '5MiB',
      '--max-pause',
      '2m',
    );
    assert.equal(set.code, 0, set.stderr);
    const got = await ctl('policy', 'get', '--host', HOST);
    assert.match(got.stdout, /\nthrottle from:\s+foreground cpu 40%, io 200 MiB\/s\n/);
    assert.match(got.stdout, /\nthrottled budget:\s+cpu 0\.25 core, io 5\.0 MiB\/s\n/);
    assert.match(got.stdout, /\nmax pause:\s+2m\n/);
    assert.equal(JSON.parse((await ctl('policy', 'get', '--host', HOST, '--json')).stdout).resumeBelowCpuPercent, 30);
    const refused = await ctl('policy', 'set', '--host', HOST, '--pause-above-cpu', '35');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^headroomctl: SetPolicy: INVALID_ARGUMENT: pause_above_cpu_percent: pause_above_cpu_percent \(35\) must be above throttle_above_cpu_percent \(40\)$/m,
    );
  });

  it('loads a policy stored before the budget, start and pressure fields existed with their defaults', async () => {
    clients.close();
    await coordinator.stop();
    const db = new Database(coordinator.dbPath);
    const old = {
      maxGuestTokens: 3,
      maxHypervisorTokens: 1,
      leaseTtlMs: 30_000,
      allowOverrun: false,
      reportIntervalMs: 10_000,
    };
    db.prepare('UPDATE hosts SET policy = ? WHERE name = ?').run(JSON.stringify(old), HOST);
    db.close();
    coordinator = await startCoordinator({ host: HOST, dbPath: coordinator.dbPath, defaultStartPolicy: true });
    clients = connectPlain(coordinator.address);
    assert.deepEqual(await getPolicy(), { ...old, ...BUDGET_DEFAULTS, ...START_DEFAULTS, ...PRESSURE_DEFAULTS });
    // And a change to one of them leaves the old fields alone.
    assert.deepEqual(await setPolicy({ pauseAboveCpuPercent: 90 }), {
      ...old,
      ...BUDGET_DEFAULTS,
      ...START_DEFAULTS,
      ...PRESSURE_DEFAULTS,
      pauseAboveCpuPercent: 90,
    });
  });
});
