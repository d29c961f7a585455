/**
 * Real libvirt for the integration tests: virtlogd and libvirtd are started (`-d`) when they are not
 * running, since CI machines have no service manager, and left running for the next test file as a service
 * would be. Minimal: h-libvirt's helper of the same name and API (a superset) replaces it on merge.
 */
import { execFile, spawnSync } from 'node:child_process';
import { requireTool } from './require-tool';
import { waitFor } from './wait';

export const LIBVIRT_URI = 'qemu:///system';

/** `virsh -c LIBVIRT_URI ARGS`; rejects with virsh's stderr. */
export function virsh(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('virsh', ['-q', '-c', LIBVIRT_URI, ...args], { env: { ...process.env, LC_ALL: 'C' } }, (err, out, e) =>
      err ? reject(new Error(`virsh ${args.join(' ')}: ${e.trim() || err.message}`)) : resolve(out),
    );
  });
}

/** libvirt answers on LIBVIRT_URI, its daemons started here if need be. */
export async function ensureLibvirtd(): Promise<void> {
  requireTool('virsh', 'libvirt-clients');
  requireTool('libvirtd', 'libvirt-daemon-system');
  requireTool('qemu-system-x86_64', 'qemu-system-x86');
  for (const daemon of ['virtlogd', 'libvirtd']) {
    if (spawnSync('pgrep', ['-x', daemon]).status === 0) continue;
    const started = spawnSync(daemon, ['-d'], { encoding: 'utf8' });
    if (started.status !== 0) throw new Error(`${daemon} -d failed: ${started.stderr}`);
  }
  const answers = () =>
    virsh('version').then(
      () => true,
      () => false,
    );
  await waitFor(answers, 30_000, `libvirtd answering on ${LIBVIRT_URI}`);
}
