import { strict as assert } from 'node:assert';
import { thresholdsAbove } from '../../../bench/penalty-guest';
import { type Phase, type PhaseKind, renderPenaltyReport } from '../../../bench/penalty-report';
import { checkPolicy, DEFAULT_POLICY } from '../../../coordinator/domain/policy';

/** A phase whose HTTP and disk p99 are given in ms, its hit rate in percent. */
function phase(kind: PhaseKind, name: string, http: number, disk: number, hit: number, backupSeconds?: number): Phase {
  const latency = (p99: number) => ({ count: 100, p50: p99 / 2, p99, max: p99 });
  return {
    kind,
    name,
    http: latency(http),
    httpErrors: 0,
    disk: latency(disk),
    worksetHitPercent: hit,
    backupSeconds,
    machineBusyPercent: 50,
    notes: [],
  };
}

describe('bench:penalty report', () => {
  const base = phase('baseline', '0. no backup', 10, 2, 99);
  const unthrottled = phase('unthrottled', 'a. unthrottled', 50, 20, 60, 20);

  it('prints each target met or missed for the Headroom phase, against the baseline and the unthrottled backup', () => {
    const text = renderPenaltyReport(
      ['intro'],
      [base, unthrottled, phase('headroom', 'b. Headroom adaptive', 12, 4, 96, 90)],
    );
    assert.match(text, /^target: HTTP p99 <= 1.25x base: 1.20x -> met$/m);
    assert.match(text, /^target: disk-probe p99 <= 1.5x base: 2.00x -> MISSED$/m);
    assert.match(text, /^target: working-set hit rate within 5 points of base: -3.0 pt -> met$/m);
    assert.match(text, /^target: backup within 4x its unthrottled duration: 4.50x -> MISSED$/m);
  });

  it('compares Headroom on the frontier only with the fixed budgets that end the backup no later', () => {
    const text = renderPenaltyReport(
      [],
      [
        base,
        unthrottled,
        phase('fixed', 'f1. slow', 11, 2.2, 98, 120),
        phase('fixed', 'f2. fast', 30, 10, 80, 40),
        phase('fixed', 'f3. as fast', 12, 3, 97, 60),
        phase('headroom', 'b. Headroom adaptive', 12.5, 2.5, 97, 60),
      ],
    );
    assert.match(text, /^frontier: f1\. slow ended later \(120\.00 s\): not comparable$/m);
    assert.match(
      text,
      /^frontier: f2\. fast ended no later: HTTP 3\.00x vs 1\.25x, disk 5\.00x vs 1\.25x -> Headroom lower$/m,
    );
    assert.match(text, /^frontier: f3\. as fast ended no later: .* -> Headroom NOT lower$/m);
    assert.match(text, /^frontier: Headroom lower than 1 of 2 fixed budget\(s\) ending no later -> MISSED$/m);
  });
});

describe('bench:penalty in-guest thresholds', () => {
  it("raises the product's defaults by the pressure the VM has without a backup, into a policy the coordinator accepts", () => {
    for (const base of [
      { io: 0, cpu: 0, memory: 0 },
      { io: 12.8, cpu: 36.8, memory: 0.4 },
      { io: 80, cpu: 99, memory: 97 },
    ]) {
      const t = thresholdsAbove(base);
      assert.equal(t.throttleAboveCpuPressurePercent, Math.min(99, Math.ceil(20 + base.cpu)));
      assert.deepEqual(checkPolicy({ ...DEFAULT_POLICY, ...t }), [], JSON.stringify(t));
    }
  });
});
