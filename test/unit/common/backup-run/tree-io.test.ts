import { strict as assert } from 'node:assert';
import { TreeIoMeter } from '../../../../common/backup-run/tree-io';
import { FakeProc } from './budget/fake-proc';

/** We are pid 100; the command leads group 200. */
const SELF = 100;
const LEADER = 200;

describe('TreeIoMeter', () => {
  const meter = (proc: FakeProc) =>
    new TreeIoMeter(
      LEADER,
      () => [...proc.processes].filter(([pid, p]) => p.pgrp === LEADER && pid !== SELF).map(([pid]) => pid),
      proc,
      SELF,
    );

  it('counts a leader that exited before it was ever seen from what its reaping added to our own counters', () => {
    const proc = new FakeProc().set(SELF, { pgrp: SELF, written: 1_000, ioBytes: 50 });
    const m = meter(proc);
    // Reaped by us: its whole life is in our counters now.
    proc.set(SELF, { pgrp: SELF, written: 1_000 + 71_680, ioBytes: 50 + 4_096 });
    m.sample();
    assert.deepEqual(m.result(), { read: 4_096, written: 71_680 });
  });

  it('adds what the tree wrote between samples, a reaped child once, and the leader since its last sample', () => {
    const proc = new FakeProc()
      .set(SELF, { pgrp: SELF, written: 500 })
      .set(LEADER, { pgrp: LEADER, ppid: SELF, written: 0 })
      .set(201, { pgrp: LEADER, ppid: LEADER, written: 0 });
    const m = meter(proc);
    proc
      .set(LEADER, { pgrp: LEADER, ppid: SELF, written: 1_000 })
      .set(201, { pgrp: LEADER, ppid: LEADER, written: 3_000 });
    m.sample();
    assert.deepEqual(m.result(), { read: 0, written: 4_000 });
    // 201 wrote 2000 more and was reaped by the leader, which wrote 500 more itself.
    proc.processes.delete(201);
    proc.set(LEADER, { pgrp: LEADER, ppid: SELF, written: 1_000 + 5_000 + 500 });
    m.sample();
    assert.deepEqual(m.result(), { read: 0, written: 4_000 + 2_000 + 500 });
    // The leader wrote 700 more and was reaped by us; our own counters grew by all of its life.
    proc.processes.delete(LEADER);
    proc.set(SELF, { pgrp: SELF, written: 500 + 6_500 + 700 });
    m.sample();
    assert.deepEqual(m.result(), { read: 0, written: 7_200 });
  });

  it('takes the dirty pages the tree dropped off what it wrote', () => {
    const proc = new FakeProc().set(SELF, { pgrp: SELF }).set(LEADER, { pgrp: LEADER, ppid: SELF });
    const m = meter(proc);
    proc.set(LEADER, { pgrp: LEADER, ppid: SELF, written: 8_192, cancelled: 4_096 });
    m.sample();
    assert.deepEqual(m.result(), { read: 0, written: 4_096 });
  });

  it('knows nothing when the kernel has no I/O accounting to read', () => {
    const m = meter(new FakeProc());
    m.sample();
    assert.equal(m.result(), undefined);
  });
});
