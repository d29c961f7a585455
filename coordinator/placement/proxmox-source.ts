/**
 * Placement from the Proxmox config directory (`/etc/pve` by default, configurable so that tests use a
 * temporary one): every `qemu-server/VMID.conf` and `lxc/VMID.conf` of this node. The directory is watched
 * (inotify), and read again every `pollIntervalMs` besides, because /etc/pve is pmxcfs, a FUSE file system
 * whose changes made on other nodes inotify does not see.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../common/util/log';
import { canonicalUuid } from '../domain/vm-identity';
import { parseProxmoxConfig } from '../domain/placement/proxmox-config';
import type { PlacedVm, PlacementEvent, PlacementSource } from '../domain/placement/types';

export interface ProxmoxSourceOptions {
  /** Default /etc/pve. */
  dir: string;
  /** Default 10 s. */
  pollIntervalMs: number;
  log: Logger;
}

const SUBDIRS = ['qemu-server', 'lxc'];
/** Changes come in bursts (an editor's write, a rename): read once they settle. */
const SETTLE_MS = 100;

export class ProxmoxSource implements PlacementSource {
  readonly kind = 'proxmox';
  private watchers: fs.FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  private settle: NodeJS.Timeout | undefined;
  private emit: (event: PlacementEvent) => void = () => {};

  constructor(private readonly o: ProxmoxSourceOptions) {}

  /** @throws when the directory does not exist */
  async start(emit: (event: PlacementEvent) => void): Promise<void> {
    if (!fs.statSync(this.o.dir, { throwIfNoEntry: false })?.isDirectory())
      throw new Error(`the Proxmox config directory ${this.o.dir} does not exist`);
    this.emit = emit;
    this.read();
    for (const sub of SUBDIRS) {
      const dir = path.join(this.o.dir, sub);
      if (!fs.existsSync(dir)) continue;
      const watcher = fs.watch(dir, () => this.soon());
      watcher.on('error', (e) => this.o.log.warn('cannot watch a Proxmox config directory', { dir, error: e }));
      this.watchers.push(watcher);
    }
    this.poll = setInterval(() => this.read(), this.o.pollIntervalMs);
    this.poll.unref();
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    clearInterval(this.poll);
    clearTimeout(this.settle);
  }

  private soon(): void {
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.read(), SETTLE_MS);
  }

  private read(): void {
    const vms: PlacedVm[] = [];
    for (const sub of SUBDIRS) {
      const dir = path.join(this.o.dir, sub);
      let files: string[];
      try {
        files = fs.readdirSync(dir);
      } catch {
        continue; // a node without containers has no lxc/
      }
      for (const file of files) {
        const m = /^(\d+)\.conf$/.exec(file);
        if (!m) continue;
        let text: string;
        try {
          text = fs.readFileSync(path.join(dir, file), 'utf8');
        } catch {
          continue; // removed between the listing and the read
        }
        const guest = parseProxmoxConfig(m[1], text);
        const uuid = guest.uuid && canonicalUuid(guest.uuid);
        // Without an SMBIOS UUID (containers, VMs without smbios1) there is no identity an agent reports.
        if (!uuid) continue;
        vms.push({ uuid, name: guest.name ?? guest.vmid, vmid: guest.vmid, state: 'unknown' });
      }
    }
    this.emit({ type: 'listed', vms });
  }
}
