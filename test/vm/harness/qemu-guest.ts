/**
 * A test guest run by qemu-system-x86_64 directly (TCG: KVM does not work on these machines), as a child
 * of the test process: the console to a file, the command channel on a virtio-serial port, the disks on
 * virtio-blk, the network user-mode and restricted (user-network.ts). No network boot ROM (romfile=): the
 * kernel is given directly.
 */
import { spawn } from 'node:child_process';
import { requireTool } from '../../helpers/require-tool';
import { COMMAND_PORT_NAME } from './guest-init';
import { Guest, type GuestSpec, prepareGuest } from './guest';
import { reapAtExit } from '../../helpers/reaper';
import { userNetdev } from './user-network';

/** Boots a guest and waits until it is ready. Throws, with the console's tail, when it does not come up. */
export async function bootQemuGuest(spec: GuestSpec = {}): Promise<Guest> {
  requireTool('qemu-system-x86_64', 'qemu-system-x86');
  const g = prepareGuest(spec);
  const args = [
    ['-accel', 'tcg', '-m', String(g.memoryMiB), '-smp', '1', '-name', g.name],
    ['-smbios', `type=1,uuid=${g.uuid}`, '-uuid', g.uuid],
    ['-kernel', g.kernel, '-initrd', g.initramfs, '-append', g.cmdline],
    ['-nographic', '-monitor', 'none', '-no-reboot', '-serial', `file:${g.consolePath}`],
    ['-netdev', userNetdev('net0', g.hostPorts), '-device', 'virtio-net-pci,netdev=net0,romfile='],
    ['-device', 'virtio-serial-pci', '-chardev', `socket,id=cmd,path=${g.commandSocket},server=on,wait=off`],
    ['-device', `virtserialport,chardev=cmd,name=${COMMAND_PORT_NAME}`],
    ...g.disks.map((d) => ['-drive', `file=${d.path},format=qcow2,if=virtio`]),
  ].flat();
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => qemu.once('exit', () => resolve()));
  const running = () => qemu.exitCode === null && qemu.signalCode === null;
  const unreap = reapAtExit(() => qemu.kill('SIGKILL'));
  const guest = new Guest(
    g,
    () => !running(),
    async () => {
      if (running()) qemu.kill('SIGKILL');
      await exited;
      unreap();
    },
  );
  try {
    await guest.ready();
  } catch (err) {
    if (stderr) (err as Error).message += `\nqemu-system-x86_64 said:\n${stderr}`;
    throw err;
  }
  return guest;
}
