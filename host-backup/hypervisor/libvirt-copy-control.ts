/**
 * The copy of a libvirt backup (push mode: one QEMU `backup` block job per disk, started by libvirt)
 * held to a speed and paused through the hypervisor. libvirt's block job API reaches backup jobs for the
 * speed (`virsh blockjob --bandwidth`); it has no pause for any job, so pause and resume go to QEMU through
 * `qemu-monitor-command` (block-job-pause/resume), which marks the domain tainted ("custom-monitor").
 * Progress is libvirt's job statistics, which are QEMU's own job counters summed over the disks.
 */
import type { CopyControl } from './copy-control';
import { type Virsh, VirshError, parseFields } from './libvirt-virsh';

interface QemuJob {
  device: string;
  type: string;
  offset: number;
  len: number;
  paused: boolean;
}

export class LibvirtCopyControl implements CopyControl {
  private last = { done: 0, total: 0 };

  constructor(
    private readonly virsh: Virsh,
    /** The domain's UUID. */
    private readonly domain: string,
    /** The target devices (vda …) the backup copies. */
    private readonly disks: readonly string[],
  ) {}

  async setSpeed(bytesPerSecond: number): Promise<void> {
    // A disk's job may have ended before the others': nothing left to limit.
    for (const disk of this.disks) await this.trySpeed(disk, bytesPerSecond);
  }

  /**
   * Sets the speed on each disk's job as soon as libvirt has made it: libvirt's backup XML takes no speed,
   * and QEMU copies at full speed until it is set, so this races `begin` (backup-begin), trying again every
   * few milliseconds while it is pending and once more after it settled.
   */
  async limitFromStart(bytesPerSecond: number, begin: Promise<unknown>): Promise<void> {
    let settled = false;
    const done = () => (settled = true);
    begin.then(done, done);
    const pending = new Set(this.disks);
    for (;;) {
      const last = settled;
      for (const disk of [...pending]) if (await this.trySpeed(disk, bytesPerSecond)) pending.delete(disk);
      if (pending.size === 0 || last) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Sets the speed of the disk's job; false when it has none (not yet, or no more). */
  private async trySpeed(disk: string, bytesPerSecond: number): Promise<boolean> {
    try {
      await this.virsh.run(['blockjob', this.domain, disk, '--bandwidth', String(bytesPerSecond), '--bytes']);
      return true;
    } catch (err) {
      if (err instanceof VirshError && /(no|not have an) active block job/i.test(err.detail)) return false;
      throw err;
    }
  }

  /** Idempotent, as resume(): the load controller may say it twice. */
  async pause(): Promise<void> {
    for (const job of await this.jobs())
      if (!job.paused) await this.virsh.qmp(this.domain, 'block-job-pause', { device: job.device });
  }

  async resume(): Promise<void> {
    for (const job of await this.jobs())
      if (job.paused) await this.virsh.qmp(this.domain, 'block-job-resume', { device: job.device });
  }

  /** While the backup runs, libvirt's figures; once it ended, the last ones seen. */
  async progress(): Promise<{ done: number; total: number }> {
    const stats = parseFields(await this.virsh.run(['domjobinfo', this.domain, '--rawstats']), ':');
    const done = Number(stats.get('disk_processed'));
    const total = Number(stats.get('disk_total'));
    if (stats.get('operation') === '9' && Number.isSafeInteger(done) && Number.isSafeInteger(total))
      this.last = { done, total };
    return this.last;
  }

  /** QEMU's backup jobs for our disks: libvirt names them backup-<target>-<node>. */
  private async jobs(): Promise<QemuJob[]> {
    const jobs = await this.virsh.qmp<QemuJob[]>(this.domain, 'query-block-jobs');
    return jobs.filter((j) => j.type === 'backup' && this.disks.some((d) => j.device.startsWith(`backup-${d}-`)));
  }
}
