/**
 * libvirt for the tests, on machines without a service manager: starts virtlogd and libvirtd (daemonised,
 * left running for whoever needs them next) when they are not running, and runs virsh against
 * qemu:///system.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { requireTool } from '../../helpers/require-tool';
import { waitFor } from '../../helpers/wait';

export const LIBVIRT_URI = 'qemu:///system';

/** Whether the daemon whose pid file is `pidFile` runs. */
function running(pidFile: string): boolean {
  try {
    process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts virtlogd and libvirtd when they are not running; resolves once libvirtd answers. Throws naming a package. */
export async function ensureLibvirt(): Promise<void> {
  requireTool('virsh', 'libvirt-clients');
  requireTool('libvirtd', 'libvirt-daemon-system');
  requireTool('virtlogd', 'libvirt-daemon-system');
  if (!running('/run/virtlogd.pid')) execFileSync('virtlogd', ['-d']);
  if (!running('/run/libvirtd.pid')) execFileSync('libvirtd', ['-d']);
  await waitFor(
    async () => {
      try {
        await virsh('uri');
        return true;
      } catch {
        return false;
      }
    },
    60_000,
    'libvirtd to answer virsh',
  );
}

/** Runs `virsh -c qemu:///system ARGS`; resolves with its stdout, rejects with its stderr in the message. */
export async function virsh(...args: string[]): Promise<string> {
  try {
    return (await promisify(execFile)('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`virsh ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** The same, synchronously, for exit-time clean-up. */
export function virshSync(...args: string[]): string {
  return execFileSync('virsh', ['-c', LIBVIRT_URI, ...args], { encoding: 'utf8', stdio: 'pipe' });
}
