/**
 * The libvirt domain of a test guest: `<domain type='qemu'>` (TCG) booting the kernel and initramfs
 * directly, its UUID as the SMBIOS system UUID, qcow2 disks on virtio, the console to a file and the
 * command channel as a virtio-serial `<channel>`.
 *
 * The network goes through `<qemu:commandline>`: libvirt 9.0's `<interface type='user'>` (slirp, or passt
 * as its backend) has neither guestfwd nor restrict, and restricted user networking with guestfwd is how a
 * guest reaches the coordinator and nothing else (user-network.ts). libvirt also starts QEMU with
 * `-sandbox ...,spawn=deny`, under which guestfwd's `cmd:` kills QEMU at the guest's first connection, so
 * this domain takes the seccomp-sandbox capability away (`<qemu:capabilities>`): libvirt then leaves
 * -sandbox out, for this domain only. libvirt marks the domain tainted (custom-argv) in its log.
 */
import { COMMAND_PORT_NAME } from './guest-init';
import type { PreparedGuest } from './guest';
import { userNetdev } from './user-network';

const escapeXml = (s: string) =>
  s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

/** The network card's PCI slot, chosen high so that it never meets the slots libvirt gives its own devices. */
const NIC_PCI_SLOT = '0x1f';

export function domainXml(g: PreparedGuest): string {
  const x = escapeXml;
  const disks = g.disks.map(
    (d) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${x(d.path)}'/>
      <target dev='${d.device}' bus='virtio'/>
    </disk>`,
  );
  return `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${x(g.name)}</name>
  <uuid>${x(g.uuid)}</uuid>
  <memory unit='MiB'>${g.memoryMiB}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${x(g.kernel)}</kernel>
    <initrd>${x(g.initramfs)}</initrd>
    <cmdline>${x(g.cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
${disks.join('\n')}
    <serial type='file'>
      <source path='${x(g.consolePath)}'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <source mode='bind' path='${x(g.commandSocket)}'/>
      <target type='virtio' name='${COMMAND_PORT_NAME}'/>
    </channel>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='${x(userNetdev('hrnet', g.hostPorts))}'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=hrnet,bus=pci.0,addr=${NIC_PCI_SLOT},romfile='/>
  </qemu:commandline>
  <qemu:capabilities>
    <qemu:del capability='seccomp-sandbox'/>
  </qemu:capabilities>
</domain>
`;
}
