/**
 * coordinator.yaml's `placement`: which one source tells the coordinator the VMs of its host, and the
 * source it makes. One of `libvirt`, `static` or `proxmox`; none: the coordinator knows no placement, and
 * VM names resolve only to themselves.
 */
import { z } from 'zod';
import { absolutePath, across, duration, expected, mapping, text } from '../../common/util/config-schema';
import { isValidName } from '../../common/domain/names';
import type { Logger } from '../../common/util/log';
import { AliasTable, canonicalUuid } from '../domain/vm-identity';
import { LibvirtSource } from './libvirt-source';
import { ProxmoxSource } from './proxmox-source';
import { type StaticVm, StaticSource } from './static-source';
import type { PlacementSource } from '../domain/placement/types';

export type PlacementOptions =
  { libvirt: { uri: string } } | { static: StaticVm[] } | { proxmox: { dir: string; pollIntervalMs: number } };

const staticVm = mapping({
  name: text('a VM name').refine(isValidName, { error: expected('a VM name (letters, digits, . _ : @ -)') }),
  uuid: text('the SMBIOS UUID').refine((v) => canonicalUuid(v) !== undefined, { error: expected('a UUID') }),
  vmid: z
    .union([z.int(), z.string()], { error: expected('a Proxmox VMID') })
    .transform(String)
    .refine((v) => /^\d+$/.test(v), { error: expected('a Proxmox VMID (digits)') })
    .optional(),
}).transform((v): StaticVm => ({ ...v, uuid: canonicalUuid(v.uuid)! }));

export const placementSchema = mapping({
  libvirt: mapping({
    uri: text('a libvirt URI')
      .min(1, { error: expected('a libvirt URI') })
      .default('qemu:///system'),
  }),
  static: z.array(staticVm, { error: expected('a list of { name, uuid, vmid }') }).check(
    across<StaticVm[]>((vms, fine, report) => {
      const ok = vms.filter((_, i) => fine(i));
      const conflicts = new Set(new AliasTable(ok).conflicts().map((c) => c.alias));
      const seen = new Set<string>();
      const owner = new Map<string, string>();
      vms.forEach((v, i) => {
        if (!fine(i)) return;
        if (seen.has(v.uuid)) report([i, 'uuid'], `${v.uuid} is listed twice`);
        seen.add(v.uuid);
        // Reported at the entry that reuses a name or VMID of another VM.
        for (const key of ['name', 'vmid'] as const) {
          const alias = v[key];
          if (alias === undefined || !conflicts.has(alias)) continue;
          if (owner.has(alias) && owner.get(alias) !== v.uuid)
            report([i, key], `"${alias}" already names ${owner.get(alias)}: each name and VMID names one VM`);
          if (!owner.has(alias)) owner.set(alias, v.uuid);
        }
      });
    }),
  ),
  proxmox: mapping({
    dir: absolutePath('the absolute path of the Proxmox config directory').default('/etc/pve'),
    pollInterval: duration({ min: 1_000 }).default(10_000),
  }),
})
  .partial()
  .check(
    across<Record<string, unknown>>((o, _fine, report) => {
      const given = Object.keys(o).filter((k) => o[k] !== undefined);
      if (given.length > 1)
        report([given[1]], `give one source of libvirt, static or proxmox, not ${given.join(' and ')}`);
    }),
  )
  .transform((o): PlacementOptions | undefined =>
    o.libvirt
      ? { libvirt: o.libvirt }
      : o.static
        ? { static: o.static }
        : o.proxmox
          ? { proxmox: { dir: o.proxmox.dir, pollIntervalMs: o.proxmox.pollInterval } }
          : undefined,
  );

/** The source `options` choose, or undefined for none. */
export function placementSource(options: PlacementOptions | undefined, log: Logger): PlacementSource | undefined {
  if (!options) return undefined;
  if ('libvirt' in options) return new LibvirtSource({ uri: options.libvirt.uri, log });
  if ('static' in options) return new StaticSource(options.static);
  return new ProxmoxSource({ ...options.proxmox, log });
}
