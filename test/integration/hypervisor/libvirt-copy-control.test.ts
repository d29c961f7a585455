/**
 * The copy of a libvirt backup (QEMU's block job) held to a speed, paused and resumed through the libvirt
 * driver's CopyControl, measured from QEMU's own job counters (libvirt's job statistics), and an aborted
 * backup leaving neither a file nor a checkpoint behind. Bounds, not rates: the copy may only be slower on
 * a busy machine, never faster than its speed.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CopyControl } from '../../../host-backup/hypervisor/copy-control';
import { virsh } from '../../helpers/libvirtd';
import { waitFor } from '../../helpers/wait';
import { MiB, useLibvirtFixture } from './libvirt-fixture';

/** What QEMU's rate limit lets through beyond speed × time: a copy chunk in flight per worker, a slice's burst. */
const SLACK = 8 * MiB;

describe('libvirt driver: the copy under a speed and a pause', function () {
  this.timeout(180_000);
  const f = useLibvirtFixture({ diskSizes: [256 * MiB] });

  beforeEach(() => f.domain.write('vda', 0, 256 * MiB, 0x5a));

  it("holds the copy to its speed, pauses and resumes it, as QEMU's own counters show", async () => {
    const speed = 2 * MiB;
    let control: CopyControl | undefined;
    const backup = f.backup({ speed, onCopy: (c) => (control = c) });
    await waitFor(() => control !== undefined, 60_000, 'the copy running');
    const c = control!;

    // What QEMU had in flight when the speed was set still lands (docs/libvirt.md: the speed applies
    // once libvirt started the job): measured from a second later.
    await new Promise((r) => setTimeout(r, 1000));
    const first = await c.progress();
    const startedMs = Date.now();
    assert.ok(first.done < first.total, `the copy is under way (${first.done} of ${first.total})`);
    await waitFor(async () => (await c.progress()).done >= first.done + 4 * MiB, 60_000, 'the copy advancing');
    const second = await c.progress();
    const elapsedS = (Date.now() - startedMs) / 1000;
    assert.ok(
      second.done - first.done <= speed * elapsedS + SLACK,
      `copied ${second.done - first.done} bytes in ${elapsedS} s at ${speed} bytes/s`,
    );

    await c.pause();
    // A chunk in flight still lands; then nothing moves.
    const settle = async () => {
      const a = await c.progress();
      await new Promise((r) => setTimeout(r, 500));
      return (await c.progress()).done === a.done;
    };
    await waitFor(settle, 30_000, 'the paused copy standing still');
    const paused = await c.progress();
    assert.ok(await settle(), 'still standing');
    assert.ok(paused.done < paused.total);

    await c.resume();
    await waitFor(async () => (await c.progress()).done > paused.done, 30_000, 'the resumed copy advancing');
    await c.setSpeed(0);
    const done = (await backup).result!;
    assert.equal(done.disks[0].record!.kind, 'full');
    assert.equal(done.disks[0].record!.bytes, 256 * MiB);
  });

  it('aborting aborts libvirt’s job: no file, no manifest, no checkpoint left; the next backup is full', async () => {
    const abort = new AbortController();
    const backup = f.backup({ speed: 1 * MiB, signal: abort.signal, onCopy: () => abort.abort() }, 'cancelled');
    const outcome = await backup;
    assert.match(outcome.result!.disks[0].error!, /job cancelled/);
    assert.deepEqual(await virsh('checkpoint-list', f.domain.name, '--name').then((o) => o.trim()), '');
    const diskDir = path.join(f.store.dir, f.domain.uuid, 'vda');
    assert.deepEqual(fs.readdirSync(diskDir), []);
    const next = (await f.backup()).result!;
    assert.equal(next.disks[0].record!.fullReason, 'no previous backup of this disk in the catalog');
  });
});
