/**
 * The placement sources against what they read: real libvirt (a domain with no OS and no network, which
 * SeaBIOS keeps idle under TCG, defined, started, paused, stopped and undefined while the source watches),
 * and the Proxmox config directory in a temporary directory (files added and removed while it runs).
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger } from '../../../../common/util/log';
import { PlacementState } from '../../../../coordinator/domain/placement/placement-state';
import type { PlacementEvent } from '../../../../coordinator/domain/placement/types';
import { LibvirtSource } from '../../../../coordinator/placement/libvirt-source';
import { ProxmoxSource } from '../../../../coordinator/placement/proxmox-source';
import { tempDir } from '../../../helpers/coordinator-process';
import { LIBVIRT_URI, ensureLibvirtd, virsh } from '../../../helpers/libvirtd';
import { waitFor } from '../../../helpers/wait';
import { FakeVirsh } from './fake-virsh';

const log = createLogger({ level: 'warn' });

/** A source's events, folded as the coordinator folds them. */
function watch() {
  const state = new PlacementState();
  const events: PlacementEvent[] = [];
  return {
    state,
    events,
    emit: (e: PlacementEvent) => {
      events.push(e);
      state.apply(e);
    },
  };
}

describe('placement sources', function () {
  this.timeout(60_000);

  describe('libvirt (real libvirtd)', () => {
    const name = `hr-place-${randomBytes(4).toString('hex')}`;
    const dir = tempDir('hr-place-');
    let source: LibvirtSource | undefined;

    before(async () => {
      await ensureLibvirtd();
    });

    after(async () => {
      await source?.stop();
      await virsh('destroy', name).catch(() => undefined);
      await virsh('undefine', name).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('lists the domains, and follows one defined, started, paused, resumed, stopped and undefined', async () => {
      const seen = watch();
      source = new LibvirtSource({ uri: LIBVIRT_URI, log });
      await source.start(seen.emit);
      assert.equal(seen.events[0].type, 'listed');
      assert.ok(!seen.state.all().some((v) => v.name === name));

      const xml = path.join(dir, 'domain.xml');
      fs.writeFileSync(
        xml,
        `<domain type='qemu'><name>${name}</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>` +
          `<os><type arch='x86_64' machine='pc'>hvm</type></os>` +
          `<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>`,
      );
      await virsh('define', xml);
      const uuid = (await virsh('domuuid', name)).trim();
      const state = () => seen.state.get(uuid)?.state;
      await waitFor(() => state() === 'stopped', 10_000, `${name} defined`);
      assert.equal(seen.state.aliases().resolve('vm', name), uuid);

      await virsh('start', name);
      await waitFor(() => state() === 'running', 20_000, `${name} running`);
      await virsh('suspend', name);
      await waitFor(() => state() === 'paused', 10_000, `${name} paused`);
      await virsh('resume', name);
      await waitFor(() => state() === 'running', 10_000, `${name} resumed`);
      await virsh('destroy', name);
      await waitFor(() => state() === 'stopped', 10_000, `${name} stopped`);
      await virsh('undefine', name);
      await waitFor(() => seen.state.get(uuid) === undefined, 10_000, `${name} undefined`);
      assert.ok(seen.events.some((e) => e.type === 'removed' && e.uuid === uuid));
    });
  });

  describe('libvirt: the event child', () => {
    let source: LibvirtSource | undefined;

    after(async () => {
      await source?.stop();
    });

    it('restarts virsh event when it dies, with a fresh listing, and reads the events after it', async () => {
      const U = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
      const fake = new FakeVirsh({ web1: U });
      const seen = watch();
      source = new LibvirtSource({ uri: 'test:///fake', virsh: fake.path, restartDelayMs: 50, log });
      await source.start(seen.emit);
      await waitFor(() => fake.eventPid() !== undefined, 10_000, 'virsh event running');
      const first = fake.eventPid()!;
      process.kill(first, 'SIGKILL');
      await waitFor(() => fake.eventPid() !== first, 10_000, 'virsh event restarted');
      await waitFor(() => seen.events.filter((e) => e.type === 'listed').length === 2, 10_000, 'a fresh listing');
      fake.event('web1', 'Suspended Migrated');
      await waitFor(() => seen.state.get(U)?.migrating === 'out', 10_000, 'the event after the restart');
    });
  });

  describe('Proxmox config directory', () => {
    const U101 = '8c3f1a2b-5d6e-4f70-8192-a3b4c5d6e7f8';
    let source: ProxmoxSource | undefined;

    after(async () => {
      await source?.stop();
    });

    it('reads the guests with a UUID, and picks up a config added and one removed while it runs', async () => {
      const dir = tempDir('hr-pve-');
      fs.mkdirSync(path.join(dir, 'qemu-server'));
      fs.mkdirSync(path.join(dir, 'lxc'));
      fs.writeFileSync(path.join(dir, 'qemu-server', '101.conf'), `name: web1\nsmbios1: uuid=${U101.toUpperCase()}\n`);
      fs.writeFileSync(path.join(dir, 'lxc', '200.conf'), 'hostname: ct1\n');
      const seen = watch();
      // A long poll interval: what is seen within the test came through the watch.
      source = new ProxmoxSource({ dir, pollIntervalMs: 3_600_000, log });
      await source.start(seen.emit);
      assert.deepEqual(seen.state.all(), [{ uuid: U101, name: 'web1', vmid: '101', state: 'unknown' }]);
      assert.equal(seen.state.aliases().resolve('vm', '101'), U101);

      const U102 = '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9';
      fs.writeFileSync(path.join(dir, 'qemu-server', '102.conf'), `name: db1\nsmbios1: uuid=${U102},manufacturer=x\n`);
      await waitFor(() => seen.state.get(U102)?.name === 'db1', 10_000, '102.conf picked up');
      fs.rmSync(path.join(dir, 'qemu-server', '101.conf'));
      await waitFor(() => seen.state.get(U101) === undefined, 10_000, '101.conf removal picked up');
      assert.equal(seen.state.aliases().resolve('vm', 'db1'), U102);
    });

    it('refuses a directory that does not exist, naming it', async () => {
      const missing = path.join(tempDir('hr-pve-'), 'nope');
      await assert.rejects(
        new ProxmoxSource({ dir: missing, pollIntervalMs: 10_000, log }).start(() => {}),
        /nope does not exist/,
      );
    });
  });
});
