import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { DEFAULT_POLICY } from '../../../../coordinator/domain/policy';
import { policyPatch } from '../../../../coordinator/rpc/validate';
import type { v1 } from '../../../../proto';

const request = (over: Partial<v1.SetPolicyRequest__Output>): v1.SetPolicyRequest__Output =>
  ({ host: '', vm: '', resetVm: false, ...over }) as v1.SetPolicyRequest__Output;

function refused(fn: () => unknown, field: string): void {
  assert.throws(fn, (e: unknown) => e instanceof InvalidArgumentError && e.field === field);
}

describe('SetPolicy request → policy change', () => {
  it('sets only the fields given for the host', () => {
    const patch = policyPatch(request({ startBelowCpuPercent: 70, minStartGapMs: 0 }), DEFAULT_POLICY);
    assert.deepEqual(Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)), {
      startBelowCpuPercent: 70,
      minStartGapMs: 0,
    });
  });

  it("with a VM, sets that VM's own start thresholds, starting from the host's for the fields not given", () => {
    const patch = policyPatch(request({ vm: 'db-1', startBelowCpuPercent: 30 }), DEFAULT_POLICY);
    assert.deepEqual(patch, { vmStartBelow: { 'db-1': { cpuPercent: 30, ioBytesPerSec: 0 } } });
    const current = {
      ...DEFAULT_POLICY,
      vmStartBelow: { 'db-1': { cpuPercent: 30, ioBytesPerSec: 0 }, 'web-1': { cpuPercent: 80, ioBytesPerSec: 5 } },
    };
    assert.deepEqual(policyPatch(request({ vm: 'db-1', startBelowIoBytesPerSec: 1000 }), current).vmStartBelow, {
      'db-1': { cpuPercent: 30, ioBytesPerSec: 1000 },
      'web-1': { cpuPercent: 80, ioBytesPerSec: 5 },
    });
    assert.deepEqual(policyPatch(request({ vm: 'db-1', resetVm: true }), current).vmStartBelow, {
      'web-1': { cpuPercent: 80, ioBytesPerSec: 5 },
    });
  });

  it("with a VM, adds the pressure thresholds given to that VM's own, and reset_vm drops them with its start ones", () => {
    const patch = policyPatch(request({ vm: 'db-1', throttleAboveCpuPressurePercent: 60 }), DEFAULT_POLICY);
    assert.deepEqual(patch, { vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 60 } } });
    const current = {
      ...DEFAULT_POLICY,
      vmStartBelow: { 'db-1': { cpuPercent: 30, ioBytesPerSec: 0 } },
      vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 60 }, 'web-1': { throttleAboveDiskAwaitMs: 40 } },
    };
    assert.deepEqual(
      policyPatch(request({ vm: 'db-1', pauseAboveCpuPressurePercent: 80, startBelowCpuPercent: 40 }), current),
      {
        vmStartBelow: { 'db-1': { cpuPercent: 40, ioBytesPerSec: 0 } },
        vmPressure: {
          'db-1': { throttleAboveCpuPressurePercent: 60, pauseAboveCpuPressurePercent: 80 },
          'web-1': { throttleAboveDiskAwaitMs: 40 },
        },
      },
    );
    assert.deepEqual(policyPatch(request({ vm: 'db-1', resetVm: true }), current), {
      vmStartBelow: {},
      vmPressure: { 'web-1': { throttleAboveDiskAwaitMs: 40 } },
    });
  });

  it('refuses, naming the field, what cannot be set for one VM or is missing', () => {
    refused(
      () => policyPatch(request({ vm: 'db-1', startBelowCpuPercent: 30, maxGuestTokens: 2 }), DEFAULT_POLICY),
      'max_guest_tokens',
    );
    refused(
      () =>
        policyPatch(request({ vm: 'db-1', throttleAboveCpuPressurePercent: 60, budgetCpuPercent: 2 }), DEFAULT_POLICY),
      'budget_cpu_percent',
    );
    refused(() => policyPatch(request({ vm: 'db-1' }), DEFAULT_POLICY), 'vm');
    refused(() => policyPatch(request({ vm: 'no such vm!', startBelowCpuPercent: 1 }), DEFAULT_POLICY), 'vm');
    refused(() => policyPatch(request({ resetVm: true }), DEFAULT_POLICY), 'reset_vm');
    refused(
      () => policyPatch(request({ vm: 'db-1', resetVm: true, startBelowCpuPercent: 5 }), DEFAULT_POLICY),
      'reset_vm',
    );
  });
});
