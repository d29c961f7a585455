/**
 * Reads a Proxmox VE guest config file (`/etc/pve/qemu-server/VMID.conf`, `/etc/pve/lxc/VMID.conf`): the
 * current configuration only (the lines before the first `[snapshot]` section), its `name:` (VMs) or
 * `hostname:` (containers) and the `uuid=` of `smbios1:`. Pure.
 */

export interface ProxmoxGuest {
  vmid: string;
  name?: string;
  /** Containers have no SMBIOS UUID. */
  uuid?: string;
}

export function parseProxmoxConfig(vmid: string, text: string): ProxmoxGuest {
  const guest: ProxmoxGuest = { vmid };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // Snapshots follow the current config, each in its own section, with their own name and smbios1.
    if (line.startsWith('[')) break;
    const m = /^([a-z0-9]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m;
    if (key === 'name' || key === 'hostname') guest.name = value;
    if (key === 'smbios1') {
      const uuid = value
        .split(',')
        .map((kv) => kv.split('='))
        .find(([k]) => k === 'uuid')?.[1];
      if (uuid) guest.uuid = uuid.toLowerCase();
    }
  }
  return guest;
}
