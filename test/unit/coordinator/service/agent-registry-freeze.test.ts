/**
 * The agent registry's part in a freeze by the hypervisor's own tools (pause the VM's running guest backups,
 * give them back after), and the budget changes it tells its listeners of (the dashboard's load strip).
 */
import { strict as assert } from 'node:assert';
import { createLogger } from '../../../../common/util/log';
import { AgentRegistry } from '../../../../coordinator/service/agent-registry';
import type { Lease } from '../../../../coordinator/domain/lease';
import { DEFAULT_POLICY, completePolicy } from '../../../../coordinator/domain/policy';
import type { Store } from '../../../../coordinator/store/store';
import * as wire from '../../../../coordinator/rpc/wire';
import type { v1 } from '../../../../proto';
import { T0, counterIds } from '../domain/fixtures';

const lease: Lease = {
  tokenId: 'tok-1',
  requestId: 'r1',
  fencing: 1,
  kind: 'GUEST',
  host: 'h1',
  vm: 'vm1',
  job: 'nightly',
  priority: 0,
  ttlMs: 30_000,
  grantedAt: T0,
  expiresAt: T0 + 30_000,
  slot: { start: T0, expectedEnd: T0 + 60_000, windowEnd: 0 },
  budget: { cpuPercent: 50, ioBytesPerSec: 1_000_000 },
};

function setup() {
  const sent: v1.CoordinatorMessage[] = [];
  const registry = new AgentRegistry(
    { saveAgent: () => {} } as unknown as Store,
    counterIds('cmd'),
    createLogger({ level: 'error' }),
    [],
    wire.token,
  );
  registry.connect(
    { vm: 'vm1', host: 'h1', agentVersion: 't', hostname: 'vm1', jobs: [], lastHelloAt: T0 },
    { send: (m) => sent.push(m), close: () => {} },
  );
  registry.onCommitted([{ type: 'granted', at: T0, lease }]);
  const budgets = () => sent.flatMap((m) => (m.command?.budget ? [m.command.budget] : []));
  return { registry, budgets };
}

const busy = {
  cpuPercent: 99,
  backupCpuPercent: 0,
  diskReadBytesPerSec: 0,
  diskWriteBytesPerSec: 0,
  backupIoBytesPerSec: 0,
} as unknown as v1.LoadReport__Output;

describe("agent registry: a VM frozen by the hypervisor's tools", () => {
  it('pauses its running guest backups, leaves them to no load report while frozen, and gives them back their budget on the thaw', () => {
    const { registry, budgets } = setup();
    registry.onCommitted([
      {
        type: 'vm-frozen',
        at: T0,
        host: 'h1',
        vm: 'vm1',
        source: 'qemu-guest-agent',
        until: T0 + 600_000,
        guests: [lease],
      },
    ]);
    assert.deepEqual(budgets(), [
      { tokenId: 'tok-1', budget: lease.budget, paused: true, reason: 'VM frozen by qemu-guest-agent' },
    ]);
    // A load that would make the controller change the budget: while frozen, it is not asked.
    registry.reportLoad('vm1', busy, [lease], completePolicy(DEFAULT_POLICY), T0 + 1_000);
    assert.equal(budgets().length, 1);
    registry.onCommitted([
      {
        type: 'vm-thawed',
        at: T0 + 2_000,
        host: 'h1',
        vm: 'vm1',
        source: 'qemu-guest-agent',
        since: T0,
        lapsed: false,
        guests: [lease],
      },
    ]);
    assert.deepEqual(budgets()[1], {
      tokenId: 'tok-1',
      budget: lease.budget,
      paused: false,
      reason: 'VM thawed: back to cpu 50%, io 1.0 MiB/s',
    });
  });

  it('lets the budget controller back in once the bound passed, should the thaw event never come', () => {
    const { registry, budgets } = setup();
    registry.onCommitted([
      {
        type: 'vm-frozen',
        at: T0,
        host: 'h1',
        vm: 'vm1',
        source: 'qemu-guest-agent',
        until: T0 + 1_000,
        guests: [lease],
      },
    ]);
    registry.reportLoad('vm1', busy, [lease], completePolicy(DEFAULT_POLICY), T0 + 1_000);
    assert.equal(budgets().length > 1, true, 'the controller decided again');
  });
});

describe('agent registry: budget changes', () => {
  it('tells its listeners each budget an agent was told, with the lease, level and reason, until unsubscribed', () => {
    const { registry, budgets } = setup();
    const changes: { tokenId: string; at: number; level: string; reason: string }[] = [];
    const unsubscribe = registry.onBudgetChange((c) =>
      changes.push({ tokenId: c.lease.tokenId, at: c.at, level: c.level, reason: c.reason }),
    );
    registry.reportLoad('vm1', busy, [lease], completePolicy(DEFAULT_POLICY), T0 + 1_000);
    assert.equal(budgets().length, 1);
    assert.deepEqual(changes, [
      {
        tokenId: 'tok-1',
        at: T0 + 1_000,
        level: budgets()[0].paused ? 'paused' : 'throttled',
        reason: budgets()[0].reason,
      },
    ]);
    unsubscribe();
    registry.onCommitted([
      { type: 'released', at: T0 + 2_000, lease, outcome: { success: true, durationMs: 1, exitCode: 0, message: '' } },
    ]);
    registry.onCommitted([{ type: 'granted', at: T0 + 3_000, lease: { ...lease, tokenId: 'tok-2' } }]);
    registry.reportLoad('vm1', busy, [{ ...lease, tokenId: 'tok-2' }], completePolicy(DEFAULT_POLICY), T0 + 4_000);
    assert.equal(budgets().length, 2, 'the agent is told');
    assert.equal(changes.length, 1, 'an unsubscribed listener is not');
  });
});
