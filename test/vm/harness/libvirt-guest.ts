/**
 * A test guest as a persistent libvirt domain (domain-xml.ts), named hr-test-<random>: defined, started,
 * and destroyed and undefined afterwards (with any checkpoint and snapshot metadata the test made).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { domainXml } from './domain-xml';
import { Guest, type GuestSpec, prepareGuest } from './guest';
import { ensureLibvirtd, virsh, virshSync } from '../../helpers/libvirtd';
import { reapAtExit } from '../../helpers/reaper';

const UNDEFINE = ['--checkpoints-metadata', '--snapshots-metadata'];

/** Boots the guest as a libvirt domain and waits until it is ready. Throws, with its console, when it cannot. */
export async function bootLibvirtGuest(spec: GuestSpec = {}): Promise<Guest> {
  await ensureLibvirtd();
  const g = prepareGuest(spec);
  const xml = path.join(g.dir, 'domain.xml');
  fs.writeFileSync(xml, domainXml(g));
  let state = 'defined';
  const unreap = reapAtExit(() => {
    for (const args of [
      ['destroy', g.name],
      ['undefine', g.name, ...UNDEFINE],
    ]) {
      try {
        virshSync(...args);
      } catch {
        // Not running, or not defined.
      }
    }
  });
  // --validate: a mistake in the XML is reported against libvirt's schema rather than half-ignored.
  await virsh('define', '--validate', xml);
  const guest = new Guest(
    g,
    () => state !== 'running',
    async () => {
      await virsh('destroy', g.name).catch(() => {});
      await virsh('undefine', g.name, ...UNDEFINE);
      unreap();
    },
  );
  try {
    await virsh('start', g.name);
  } catch (err) {
    await guest.destroy();
    throw err;
  }
  state = 'running';
  // The domain is destroyed when the guest powers off or panics (on_poweroff, on_crash): polled while booting.
  const poll = setInterval(() => {
    virsh('domstate', g.name).then(
      (s) => (state = s.trim()),
      () => (state = 'gone'),
    );
  }, 1_000);
  try {
    await guest.ready();
  } finally {
    clearInterval(poll);
  }
  return guest;
}
