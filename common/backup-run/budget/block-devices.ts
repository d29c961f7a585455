/**
 * The disks a byte-rate budget is set on. cgroups limit bandwidth per device ("MAJ:MIN"), and which
 * filesystems a backup command will touch is unknown beforehand, so the limit goes on every whole disk:
 * the entries of /sys/block with a `device` link (virtio, SCSI, NVMe). Partitions, device-mapper and md
 * devices submit their I/O to those disks, where it is counted against the group once; loop and zram
 * devices are not storage of their own.
 */
import * as fs from 'node:fs';

export interface BlockDevice {
  name: string;
  /** "254:0", as the cgroup files want it. */
  majorMinor: string;
  /** The I/O scheduler in use (the bracketed one in queue/scheduler), e.g. mq-deadline, bfq, none. */
  scheduler?: string;
}

/** The whole disks under `sysBlock` (default /sys/block). */
export function wholeDisks(sysBlock = '/sys/block'): BlockDevice[] {
  let names: string[];
  try {
    names = fs.readdirSync(sysBlock);
  } catch {
    return [];
  }
  const disks: BlockDevice[] = [];
  for (const name of names.sort()) {
    const dir = `${sysBlock}/${name}`;
    if (!fs.existsSync(`${dir}/device`)) continue;
    let majorMinor: string;
    try {
      majorMinor = fs.readFileSync(`${dir}/dev`, 'utf8').trim();
    } catch {
      continue;
    }
    if (!/^\d+:\d+$/.test(majorMinor)) continue;
    let scheduler: string | undefined;
    try {
      scheduler = /\[([^\]]+)\]/.exec(fs.readFileSync(`${dir}/queue/scheduler`, 'utf8'))?.[1];
    } catch {
      // no queue directory: no scheduler to speak of
    }
    disks.push({ name, majorMinor, scheduler });
  }
  return disks;
}
