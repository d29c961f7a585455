/**
 * The VM test harness itself (test/vm/harness/): a guest boots with its disks, answers on its command
 * channel, and one that cannot boot fails with its serial console in the message, under QEMU or libvirt.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { tempDir } from '../helpers/coordinator-process';
import { makeExt4Disk } from './harness/disk';
import { attachConsolesOnFailure, type Guest } from './harness/guest';
import { bootLibvirtGuest } from './harness/libvirt-guest';
import { bootQemuGuest } from './harness/qemu-guest';

describe('VM harness: small guests under QEMU and libvirt (TCG)', function () {
  const guests: Guest[] = [];
  attachConsolesOnFailure(() => guests);
  afterEach(async () => {
    await Promise.all(guests.splice(0).map((g) => g.destroy()));
  });

  it('boots a guest with its SMBIOS UUID and a mounted virtio disk, and runs shell lines in it', async () => {
    const disk = makeExt4Disk(path.join(tempDir(), 'data.qcow2'), { sizeMiB: 16, files: { 'src/a.txt': 'alpha\n' } });
    const guest = await bootQemuGuest({ disks: [{ path: disk, mountPoint: '/mnt/data' }] });
    guests.push(guest);
    assert.equal((await guest.readFile('/sys/class/dmi/id/product_uuid')).toString().trim(), guest.uuid);
    assert.equal((await guest.readFile('/mnt/data/src/a.txt')).toString(), 'alpha\n');
    const written = await guest.run('echo out; echo err >&2; printf "\\000\\377" > /mnt/data/bin; exit 3');
    assert.deepEqual([written.output.toString(), written.code], ['out\nerr\n', 3]);
    assert.deepEqual([...(await guest.readFile('/mnt/data/bin'))], [0, 255]);
  });

  for (const [how, boot] of [
    ['QEMU', bootQemuGuest],
    ['libvirt', bootLibvirtGuest],
  ] as const) {
    it(`fails a guest that cannot boot (${how}) with the tail of its serial console in the message`, async () => {
      // No such init in the initramfs: the kernel panics, and the guest is gone (QEMU's -no-reboot,
      // libvirt's on_reboot).
      await assert.rejects(boot({ kernelArgs: 'rdinit=/no-such-init' }), (err: Error) => {
        assert.match(err.message, /the guest stopped before its console said "hr-guest: ready"/);
        assert.match(err.message, /serial console \(.*console\.log\) ends with:\n[\s\S]*Kernel panic/);
        return true;
      });
    });
  }
});
