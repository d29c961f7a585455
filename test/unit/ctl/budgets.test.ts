import { strict as assert } from 'node:assert';
import { parseArgs, parsePercent } from '../../../common/util/cli-args';
import { renderBudgets } from '../../../ctl/commands/agents';
import { buildSetPolicyRequest, policySetCommand, renderPolicy } from '../../../ctl/commands/policy';
import { DEFAULT_POLICY } from '../../../coordinator/domain/policy';
import type { AgentInfo__Output, BudgetReport__Output } from '../../../proto/generated/headroom/v1';

const MiB = 1024 * 1024;

function agent(vm: string, budgets: BudgetReport__Output[]): AgentInfo__Output {
  return {
    vm,
    host: 'host-a',
    agentVersion: '0.1.0',
    hostname: vm,
    connected: true,
    lastHelloUnixMs: 0,
    lastLoad: null,
    jobs: [],
    budgets,
    vmName: '',
    loadSignal: '',
  };
}

describe('ctl: budgets', () => {
  it('lists each running backup with its budget, whether it is paused, and how it is enforced', () => {
    const out = renderBudgets([
      agent('vm-2', [
        {
          tokenId: 'fedcba9876543210',
          budget: { cpuPercent: 0, ioBytesPerSec: 0 },
          paused: false,
          enforcement: 'ENFORCEMENT_SIGNALS',
          detail: '',
        },
      ]),
      agent('vm-1', [
        {
          tokenId: '0123456789abcdef',
          budget: { cpuPercent: 25, ioBytesPerSec: 10 * MiB },
          paused: true,
          enforcement: 'ENFORCEMENT_CGROUP_V2',
          detail: '/sys/fs/cgroup/headroom/restic',
        },
      ]),
      agent('vm-3', []),
    ]);
    const [header, first, second, more] = out.split('\n');
    assert.match(header, /^VM\s+BACKUP\s+STATE\s+CPU BUDGET\s+I\/O BUDGET\s+ENFORCED BY\s+DETAIL$/);
    assert.match(
      first,
      /^vm-1\s+01234567\s+paused\s+0\.25 core\s+10\.0 MiB\/s\s+cgroup v2\s+\/sys\/fs\/cgroup\/headroom\/restic$/,
    );
    assert.match(second, /^vm-2\s+fedcba98\s+running\s+no limit\s+no limit\s+signals\s+-$/);
    assert.equal(more, undefined);
    assert.equal(renderBudgets([agent('vm-3', [])]), '', 'nothing at all when no backup runs');
  });

  it("shows the budget controller's policy", () => {
    const out = renderPolicy(
      { ...DEFAULT_POLICY, throttleAboveIoBytesPerSec: 200 * MiB, budgetCpuPercent: 150, throttledCpuPercent: 0 },
      'host-a',
    );
    assert.match(out, /\nthrottle from:\s+foreground cpu 60%, io 200 MiB\/s\n/);
    assert.match(out, /\npause from:\s+foreground cpu 85%, io off\n/);
    assert.match(out, /\nresume below:\s+foreground cpu 50%, io off\n/);
    assert.match(out, /\nbackup budget:\s+cpu 1\.5 cores, io no limit\n/);
    assert.match(out, /\nthrottled budget:\s+cpu full, io 10\.0 MiB\/s\n/);
    assert.match(out, /\nbudget dwell:\s+30s\nmax pause:\s+10m\npause window guard:\s+5m\n/);
    assert.match(renderPolicy({ ...DEFAULT_POLICY, maxPauseMs: 0 }, ''), /\nmax pause:\s+never pause\n/);
  });

  it('shows how starts follow the plan and the load', () => {
    const out = renderPolicy(
      {
        ...DEFAULT_POLICY,
        hostBudgetIoBytesPerSec: 400 * MiB,
        hostStartBelowIoBytesPerSec: 300 * MiB,
        hypervisorBudgetCpuPercent: 200,
      },
      'host-a',
    );
    assert.match(out, /\nfollow plan:\s+true\nmin start gap:\s+1m\n/);
    assert.match(out, /\nhost backup budget:\s+cpu no limit, io 400 MiB\/s\n/);
    assert.match(out, /\nstart below:\s+vm foreground cpu 60%, io off; host cpu 90%, io 300 MiB\/s\n/);
    assert.match(out, /\nhypervisor budget:\s+cpu 2 cores, io no limit$/);
  });

  it('sends the start options given, converted to the wire units', () => {
    const args = parseArgs(
      [
        '--follow-plan',
        'false',
        '--min-start-gap',
        '30s',
        '--start-below-cpu',
        '70',
        '--host-start-below-io',
        '100MiB',
        '--hypervisor-budget-io',
        '50MiB',
      ],
      policySetCommand.options,
    );
    assert.deepEqual(buildSetPolicyRequest('h1', args), {
      host: 'h1',
      followPlan: false,
      minStartGapMs: 30_000,
      startBelowCpuPercent: 70,
      hostStartBelowIoBytesPerSec: 100 * MiB,
      hypervisorBudgetIoBytesPerSec: 50 * MiB,
    });
  });

  it('sends the budget options given, converted to the wire units', () => {
    const args = parseArgs(
      [
        '--throttle-above-cpu',
        '40',
        '--resume-below-io',
        '20MiB',
        '--budget-cpu',
        '150',
        '--max-pause',
        '2m',
        '--pause-window-guard',
        '0',
      ],
      policySetCommand.options,
    );
    assert.deepEqual(buildSetPolicyRequest('h1', args), {
      host: 'h1',
      throttleAboveCpuPercent: 40,
      resumeBelowIoBytesPerSec: 20 * MiB,
      budgetCpuPercent: 150,
      maxPauseMs: 120_000,
      pauseWindowGuardMs: 0,
    });
  });

  it('refuses malformed budget values naming the option', () => {
    assert.throws(
      () => parseArgs(['--pause-above-cpu', '101'], policySetCommand.options),
      /--pause-above-cpu: expected a whole number from 0 to 100, got "101"/,
    );
    assert.throws(
      () => parseArgs(['--throttled-io', 'fast'], policySetCommand.options),
      /--throttled-io: expected bytes per second/,
    );
    assert.throws(
      () => parseArgs(['--budget-dwell', 'soon'], policySetCommand.options),
      /--budget-dwell: expected a duration/,
    );
  });

  it('reads percentages as people write them', () => {
    assert.deepEqual(['0', '60', '100'].map(parsePercent), [0, 60, 100]);
    for (const bad of ['', '-1', '1.5', '60%', '101'])
      assert.throws(() => parsePercent(bad), /expected a whole number from 0 to 100/);
  });
});
