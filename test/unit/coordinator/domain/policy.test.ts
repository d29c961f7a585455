import { strict as assert } from 'node:assert';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import {
  DEFAULT_POLICY,
  type HostPolicy,
  applyPolicyPatch,
  checkPolicy,
  completePolicy,
  vmPressurePolicy,
} from '../../../../coordinator/domain/policy';

const OLD_POLICY: HostPolicy = {
  maxGuestTokens: 2,
  maxHypervisorTokens: 1,
  leaseTtlMs: 30_000,
  allowOverrun: false,
  reportIntervalMs: 10_000,
};

function refusal(patch: Partial<HostPolicy>, base: HostPolicy = DEFAULT_POLICY): InvalidArgumentError {
  try {
    applyPolicyPatch(base, patch);
  } catch (e) {
    assert.ok(e instanceof InvalidArgumentError);
    return e;
  }
  throw new Error(`expected ${JSON.stringify(patch)} to be refused`);
}

describe('host policy', () => {
  it('has valid defaults', () => {
    assert.deepEqual(checkPolicy(DEFAULT_POLICY), []);
  });

  it('completes a policy stored before the budget fields existed with their defaults', () => {
    const p = completePolicy(OLD_POLICY);
    assert.equal(p.maxGuestTokens, 2);
    assert.equal(p.throttleAboveCpuPercent, 60);
    assert.equal(p.maxPauseMs, 600_000);
    // A change to it is validated against those defaults.
    assert.equal(applyPolicyPatch(OLD_POLICY, { pauseAboveCpuPercent: 90 }).pauseAboveCpuPercent, 90);
    assert.equal(refusal({ throttleAboveCpuPercent: 95 }, OLD_POLICY).field, 'throttle_above_cpu_percent');
  });

  it('refuses the existing fields out of range as before, naming the wire field', () => {
    const e = refusal({ maxGuestTokens: 0 });
    assert.equal(e.field, 'max_guest_tokens');
    assert.equal(e.message, 'max_guest_tokens: must be an integer from 1 to 1000, got 0');
    assert.equal(refusal({ leaseTtlMs: 10 }).field, 'lease_ttl_ms');
  });

  it('refuses budget fields out of range', () => {
    assert.equal(refusal({ throttleAboveCpuPercent: 101 }).field, 'throttle_above_cpu_percent');
    assert.equal(refusal({ budgetCpuPercent: -1 }).field, 'budget_cpu_percent');
    assert.equal(refusal({ throttledIoBytesPerSec: 1.5 }).field, 'throttled_io_bytes_per_sec');
    assert.equal(refusal({ maxPauseMs: 8 * 24 * 3_600_000 }).field, 'max_pause_ms');
    assert.equal(refusal({ budgetDwellMs: 2 * 3_600_000 }).field, 'budget_dwell_ms');
  });

  it('keeps resume below throttle below pause, blaming the field that was just set', () => {
    const resume = refusal({ resumeBelowCpuPercent: 60 });
    assert.equal(resume.field, 'resume_below_cpu_percent');
    assert.match(
      resume.problem,
      /resume_below_cpu_percent \(60\) must be from 1 to below throttle_above_cpu_percent \(60\)/,
    );
    assert.equal(refusal({ throttleAboveCpuPercent: 40 }).field, 'throttle_above_cpu_percent');
    assert.equal(refusal({ pauseAboveCpuPercent: 60 }).field, 'pause_above_cpu_percent');
    assert.equal(refusal({ throttleAboveCpuPercent: 90 }).field, 'throttle_above_cpu_percent');
    // Both set at once: the message names both, the field is the one that must move.
    assert.equal(refusal({ throttleAboveCpuPercent: 40, resumeBelowCpuPercent: 45 }).field, 'resume_below_cpu_percent');
    assert.equal(
      applyPolicyPatch(DEFAULT_POLICY, { throttleAboveCpuPercent: 40, resumeBelowCpuPercent: 30 })
        .throttleAboveCpuPercent,
      40,
    );
  });

  it('measures the resume threshold against pausing when throttling is off, and ignores it when both are off', () => {
    assert.equal(refusal({ throttleAboveCpuPercent: 0, resumeBelowCpuPercent: 90 }).field, 'resume_below_cpu_percent');
    assert.ok(applyPolicyPatch(DEFAULT_POLICY, { throttleAboveCpuPercent: 0, pauseAboveCpuPercent: 0 }));
  });

  it('needs a resume threshold once an I/O threshold is on', () => {
    const e = refusal({ throttleAboveIoBytesPerSec: 100 * 1024 * 1024 });
    assert.equal(e.field, 'throttle_above_io_bytes_per_sec');
    assert.match(e.problem, /resume_below_io_bytes_per_sec \(0\) must be from 1 to below/);
    const p = applyPolicyPatch(DEFAULT_POLICY, {
      throttleAboveIoBytesPerSec: 100 * 1024 * 1024,
      resumeBelowIoBytesPerSec: 50 * 1024 * 1024,
    });
    assert.equal(p.resumeBelowIoBytesPerSec, 50 * 1024 * 1024);
  });
  it('checks the pressure and await thresholds like the others, naming the field', () => {
    assert.equal(refusal({ pauseAboveIoPressurePercent: 8 }).field, 'pause_above_io_pressure_percent');
    assert.match(refusal({ throttleAboveCpuPressurePercent: 101 }).problem, /from 0 to 100, got 101/);
    assert.equal(refusal({ resumeBelowMemoryPressurePercent: 5 }).field, 'resume_below_memory_pressure_percent');
    assert.equal(refusal({ throttleAboveDiskAwaitMs: 5 }).field, 'throttle_above_disk_await_ms');
    assert.ok(applyPolicyPatch(DEFAULT_POLICY, { throttleAboveIoPressurePercent: 0, pauseAboveIoPressurePercent: 0 }));
    const mode = refusal({ budgetMode: 'fast' as 'fixed' });
    assert.deepEqual([mode.field, mode.problem], ['budget_mode', 'must be fixed or adaptive, got "fast"']);
    assert.equal(applyPolicyPatch(DEFAULT_POLICY, { budgetMode: 'adaptive' }).budgetMode, 'adaptive');
  });

  it("puts a VM's own pressure thresholds in place of the host's, field by field, for that VM alone", () => {
    const policy = {
      ...DEFAULT_POLICY,
      vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 60, pauseAboveCpuPressurePercent: 80 } },
    };
    const db = vmPressurePolicy(policy, 'db-1');
    assert.deepEqual(
      [db.throttleAboveCpuPressurePercent, db.pauseAboveCpuPressurePercent, db.resumeBelowCpuPressurePercent],
      [60, 80, DEFAULT_POLICY.resumeBelowCpuPressurePercent],
    );
    assert.equal(db.throttleAboveIoPressurePercent, DEFAULT_POLICY.throttleAboveIoPressurePercent);
    assert.equal(vmPressurePolicy(policy, 'web-1'), policy, 'a VM without an override follows the host');
    assert.equal(vmPressurePolicy(DEFAULT_POLICY, 'db-1'), DEFAULT_POLICY, 'no override: the policy as it was');
  });

  it("checks each VM's pressure thresholds once merged with the host's, naming vm_pressure, the VM and the key", () => {
    const vm = (own: object) => refusal({ vmPressure: { 'db-1': own } });
    const alone = vm({ throttleAboveCpuPressurePercent: 60 });
    assert.deepEqual(
      [alone.field, alone.problem],
      [
        'vm_pressure',
        "db-1: throttle_above_cpu_pressure_percent: the host's pause_above_cpu_pressure_percent (40) must be above throttle_above_cpu_pressure_percent (60)",
      ],
    );
    assert.match(
      vm({ resumeBelowIoPressurePercent: 101 }).problem,
      /^db-1: resume_below_io_pressure_percent: must be an integer from 0 to 100, got 101$/,
    );
    assert.match(
      vm({ throttleAboveDiskAwaitMs: 5 }).problem,
      /^db-1: throttle_above_disk_await_ms: the host's resume_below_disk_await_ms \(10\)/,
    );
    assert.equal(vm({ maxGuestTokens: 3 }).problem, 'db-1: maxGuestTokens is not a pressure threshold');
    assert.equal(vm({}).problem, 'db-1: gives no threshold: give one, or drop the VM');
    assert.equal(
      refusal({ vmPressure: { 'bad name!': { throttleAboveCpuPressurePercent: 30 } } }).field,
      'vm_pressure',
    );
    // A change of the host's thresholds that the VM's no longer fit is refused too.
    const own = { vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 30 } } };
    const withOwn = applyPolicyPatch(DEFAULT_POLICY, own);
    assert.equal(refusal({ pauseAboveCpuPressurePercent: 25 }, withOwn).field, 'vm_pressure');
    assert.deepEqual(checkPolicy(completePolicy(withOwn)), []);
    assert.ok(
      applyPolicyPatch(DEFAULT_POLICY, {
        vmPressure: { 'db-1': { throttleAboveCpuPressurePercent: 0, pauseAboveCpuPressurePercent: 0 } },
      }),
    );
  });
});
