import { strict as assert } from 'node:assert';
import {
  VirshOutputError,
  lifecycleEvent,
  parseDomainList,
  parseLifecycleLine,
} from '../../../../../coordinator/domain/placement/virsh-events';

const U = 'b6ed29a1-4efa-4a49-8c86-26a294fbd777';

describe('virsh output (libvirt 9.0)', () => {
  it('reads the lifecycle lines virsh event printed for a define, start, suspend, resume, destroy, undefine', () => {
    // Captured from `virsh -c qemu:///system event --loop --event lifecycle` on this machine (libvirt 9.0).
    const captured = [
      "event 'lifecycle' for domain 'hr-place-probe1': Defined Added",
      "event 'lifecycle' for domain 'hr-place-probe1': Resumed Unpaused",
      "event 'lifecycle' for domain 'hr-place-probe1': Started Booted",
      "event 'lifecycle' for domain 'hr-place-probe1': Suspended Paused",
      "event 'lifecycle' for domain 'hr-place-probe1': Shutdown Finished after host request",
      "event 'lifecycle' for domain 'hr-place-probe1': Stopped Destroyed",
      "event 'lifecycle' for domain 'hr-place-probe1': Undefined Removed",
    ];
    const events = captured.map((l) => lifecycleEvent(parseLifecycleLine(l), U));
    const name = 'hr-place-probe1';
    assert.deepEqual(events, [
      'refresh',
      { type: 'state', uuid: U, name, state: 'running' },
      { type: 'state', uuid: U, name, state: 'running' },
      { type: 'state', uuid: U, name, state: 'paused' },
      undefined,
      { type: 'state', uuid: U, name, state: 'stopped' },
      { type: 'removed', uuid: U },
    ]);
  });

  it('reads the migration steps: out (Suspended, Stopped Migrated), in (Started, Resumed Migrated), post-copy', () => {
    const step = (text: string) => {
      const e = lifecycleEvent(parseLifecycleLine(`event 'lifecycle' for domain 'web 1': ${text}`), U);
      return e && e !== 'refresh' && e.type === 'migration' ? e.step : e;
    };
    assert.equal(step('Suspended Migrated'), 'outgoing');
    assert.equal(step('Suspended Post-copy'), 'outgoing');
    assert.equal(step('Stopped Migrated'), 'left');
    assert.equal(step('Started Migrated'), 'incoming');
    assert.equal(step('Resumed Migrated'), 'resumed');
    assert.equal(step('Stopped Failed'), 'failed');
    assert.deepEqual(step('Resumed Post-copy'), { type: 'state', uuid: U, name: 'web 1', state: 'running' });
  });

  it('refuses a line that is not a lifecycle event rather than guess', () => {
    for (const line of [
      "event 'reboot' for domain 'x'",
      "event 'lifecycle' for domain 'x': Exploded Loudly",
      'error: failed to connect to the hypervisor',
    ])
      assert.throws(() => parseLifecycleLine(line), VirshOutputError);
  });

  it('reads virsh list --all --uuid --name, and refuses anything else', () => {
    const out = `27dc2a9b-f7fd-4f6c-ba3b-46625dc1ae78 libvirt-exp1\n${U.toUpperCase()} hr-place-probe1\n\n`;
    assert.deepEqual(parseDomainList(out), [
      { uuid: '27dc2a9b-f7fd-4f6c-ba3b-46625dc1ae78', name: 'libvirt-exp1' },
      { uuid: U, name: 'hr-place-probe1' },
    ]);
    assert.throws(() => parseDomainList(' Id   Name   State\n'), VirshOutputError);
  });
});
