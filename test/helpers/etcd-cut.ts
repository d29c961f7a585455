/**
 * Cuts processes off from etcd and lets them back, for the cluster tests: the processes are put in a
 * cgroup v2 group of their own, and an iptables rule drops that group's packets to etcd's client ports
 * (no RST: the connections hang, as they do behind a failed link). Everything else they reach as before,
 * so a member cut off this way still serves its clients and reaches the other members. Needs root,
 * iptables with the cgroup match, and cgroup v2 mounted (here at /sys/fs/cgroup/unified).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { requireTool } from './require-tool';

/** Where cgroup v2 is mounted: alone (the unified layout) or beside v1 (the hybrid one, as on this machine). */
function cgroup2Root(): string {
  // cgroup.controllers exists in v2 hierarchies only.
  for (const dir of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'])
    if (fs.existsSync(path.join(dir, 'cgroup.controllers'))) return dir;
  throw new Error('cgroup v2 is not mounted (looked in /sys/fs/cgroup/unified and /sys/fs/cgroup)');
}

export class EtcdCut {
  private readonly group = `hr-cut-${randomBytes(4).toString('hex')}`;
  private readonly root = cgroup2Root();
  private readonly rule: string[];
  private isCut = false;

  constructor(etcdPorts: readonly number[]) {
    requireTool('iptables', 'iptables');
    fs.mkdirSync(path.join(this.root, this.group));
    this.rule = [
      'OUTPUT',
      '-m',
      'cgroup',
      '--path',
      this.group,
      '-p',
      'tcp',
      '-m',
      'multiport',
      '--dports',
      etcdPorts.join(','),
      '-j',
      'DROP',
    ];
  }

  /** Puts a process (a restarted member's new pid, too) in the group: cut whenever the group is. */
  add(pid: number): void {
    fs.writeFileSync(path.join(this.root, this.group, 'cgroup.procs'), String(pid));
  }

  get cut(): boolean {
    return this.isCut;
  }

  cutOff(): void {
    if (this.isCut) return;
    execFileSync('iptables', ['-I', ...this.rule]);
    this.isCut = true;
  }

  restore(): void {
    if (!this.isCut) return;
    execFileSync('iptables', ['-D', ...this.rule]);
    this.isCut = false;
  }

  /** Restores, moves what is left in the group back to the root group and removes it. Safe twice. */
  cleanup(): void {
    this.restore();
    const dir = path.join(this.root, this.group);
    if (!fs.existsSync(dir)) return;
    const pids = fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        fs.writeFileSync(path.join(this.root, 'cgroup.procs'), pid);
      } catch {
        // Gone meanwhile.
      }
    }
    fs.rmdirSync(dir);
  }
}
