import { strict as assert } from 'node:assert';
import {
  groupMembers,
  parseProcIo,
  parseProcStat,
  ProcessUsage,
} from '../../../../../common/backup-run/budget/process-usage';
import { FakeProc } from './fake-proc';

describe('process usage from /proc', () => {
  it('parses stat lines whose command name holds spaces and parentheses', () => {
    const line = '4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194304 10 0 0 0 150 50 30 20 20 0 1 0 777 0 0\n';
    assert.deepEqual(parseProcStat(line), { state: 'S', ppid: 1, pgrp: 4242, cpuSeconds: 2.5, startTicks: 777 });
    assert.equal(parseProcStat('garbage'), undefined);
  });

  it('takes the storage bytes of /proc/<pid>/io, not the page-cache ones', () => {
    assert.equal(
      parseProcIo('rchar: 999\nwchar: 999\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n'),
      12288,
    );
    assert.equal(parseProcIo('rchar: 1\n'), undefined);
  });

  it('lists the live members of a process group, leaving out zombies and the exempt watchdog', () => {
    const proc = new FakeProc()
      .set(100, { pgrp: 100 })
      .set(101, { pgrp: 100 })
      .set(102, { pgrp: 100, state: 'Z' })
      .set(103, { pgrp: 100 })
      .set(200, { pgrp: 200 });
    assert.deepEqual(groupMembers(100, 103, proc), [100, 101]);
  });

  it('adds up what the members used between samples, counting a new process whole', () => {
    const proc = new FakeProc().set(100, { pgrp: 100, ticks: 50, ioBytes: 1000 });
    const usage = new ProcessUsage(() => [...proc.processes.keys()], proc);
    assert.deepEqual(usage.sample(), { cpuSeconds: 0.5, ioBytes: 1000 });
    proc.set(100, { pgrp: 100, ticks: 80, ioBytes: 1500 }).set(101, { pgrp: 100, ppid: 100, ticks: 20, ioBytes: 100 });
    assert.deepEqual(usage.sample(), { cpuSeconds: 1.0, ioBytes: 1600 });
  });

  it("does not count a reaped child twice when its parent's counters take it over", () => {
    const proc = new FakeProc()
      .set(100, { pgrp: 100, ticks: 10 })
      .set(101, { pgrp: 100, ppid: 100, ticks: 40, ioBytes: 4000 });
    const usage = new ProcessUsage(() => [...proc.processes.keys()], proc);
    assert.deepEqual(usage.sample(), { cpuSeconds: 0.5, ioBytes: 4000 });
    // The child ran 10 more ticks and wrote 1000 more bytes before its parent reaped it: the parent's
    // cutime and I/O jump by the child's whole 50 ticks and 5000 bytes.
    proc.processes.delete(101);
    proc.set(100, { pgrp: 100, ticks: 10 + 50, ioBytes: 5000 });
    assert.deepEqual(usage.sample(), { cpuSeconds: 0.6, ioBytes: 5000 });
  });

  it('takes a reused pid for the new process it is', () => {
    const proc = new FakeProc().set(100, { pgrp: 100, ticks: 300, startTicks: 5 });
    const usage = new ProcessUsage(() => [100], proc);
    usage.sample();
    proc.set(100, { pgrp: 100, ticks: 20, startTicks: 9 });
    assert.deepEqual(usage.sample(), { cpuSeconds: 3.2, ioBytes: 0 });
  });
});
