/**
 * A stand-in for one vzdump job in snapshot mode, run as its own process (`node vzdump-process.js
 * JOB.json`), with the process structure and the log of the real one, so that the hook and its holders
 * meet what they meet on Proxmox. Each fact, and where it comes from:
 *
 * - The hooks run as this process's children, one at a time, with vzdump's arguments and bare
 *   environment (vzdump-emulation.ts startHook; PVE::VZDump::run_hook_script): so their $PPID is vzdump.
 *   Order per guest in snapshot mode: backup-start, pre-stop, pre-restart, post-restart, the archive,
 *   backup-end; on any failure "ERROR: Backup of VM N failed - MESSAGE" and backup-abort (its failure
 *   ignored); log-end always. job-start before the guests, job-end after (PVE::VZDump exec_backup,
 *   exec_backup_task). A failing hook fails its phase: the guest (or the job, at job-start).
 * - Hook output goes to the task log line by line as "INFO: …" (run_command with vzdump's log handler).
 * - A VM (qemu): vzdump asks the VM's own QEMU to copy (QMP `backup` on /var/run/qemu-server/VMID.qmp, with
 *   `speed` = bwlimit KiB/s × 1024) and polls `query-backup` once a second, a fresh QMP connection per
 *   command (PVE::VZDump::QemuServer archive_vma, mon_cmd); status `error` fails the guest with QEMU's
 *   errmsg. Debian's QEMU has no `backup`/`query-backup` (Proxmox patches): the stand-ins here are
 *   `blockdev-backup` (auto-dismiss off, so that the end and its error stay to be read) and
 *   `query-block-jobs`, on a qemu-storage-daemon whose QMP socket is VMID.qmp in the run directory.
 * - A container (lxc): vzdump runs `tar cpf - … | cstream -t BYTES | compressor > FILE` as its own child
 *   through run_command, which fails the guest on a non-zero exit (PVE::VZDump::LXC archive; bash with
 *   pipefail, as PVE::Tools::run_command runs a pipeline).
 * - bwlimit and ionice come from vzdump.conf; the log says "bandwidth limit: N KB/s" and "ionice priority: N".
 * - The job exits non-zero when a guest failed ("Backup job finished with errors").
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { QmpClient } from '../../../host-backup/hypervisor/qmp-client';
import { type VzdumpGuest, type VzdumpJobFile, type VzdumpTask, vzdumpEnv } from './vzdump-emulation';

const log = (level: 'INFO' | 'ERROR', text: string) => process.stdout.write(`${level}: ${text}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function setting(file: string, key: string): number | undefined {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const m = new RegExp(`^${key}:\\s*(\\d+)\\s*$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Runs the hook for `phase` as vzdump does; rejects (the phase fails) on a non-zero exit. */
function hook(f: VzdumpJobFile, phase: string, task?: VzdumpTask): Promise<void> {
  const args = task ? [phase, task.mode, String(task.vmid)] : [phase];
  const child = spawn(f.script, args, { stdio: ['ignore', 'pipe', 'pipe'], env: vzdumpEnv(f.job, task) });
  const lines = (d: Buffer) =>
    d
      .toString()
      .split('\n')
      .filter(Boolean)
      .forEach((l) => log('INFO', l));
  child.stdout.on('data', lines);
  child.stderr.on('data', lines);
  return new Promise((resolve, reject) =>
    child.once('close', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`command '${[f.script, ...args].join(' ')}' failed: exit code ${code}`)),
    ),
  );
}

/** mon_cmd: one QMP command on a fresh connection to the VM's socket. */
async function monCmd<T>(socket: string, command: string, args?: Record<string, unknown>): Promise<T> {
  const client = await QmpClient.connect(socket);
  try {
    return await client.execute<T>(command, args);
  } finally {
    client.close();
  }
}

async function archiveQemu(f: VzdumpJobFile, g: VzdumpGuest & { vmtype: 'qemu' }, file: string, speed: number) {
  const socket = path.join(f.qemuRunDir, `${g.vmid}.qmp`);
  const jobId = `vzdump-${g.vmid}`;
  const target = `vzdump-target-${g.vmid}`;
  const size = (
    await monCmd<Array<{ 'node-name': string; image: { 'virtual-size': number } }>>(socket, 'query-named-block-nodes')
  ).find((n) => n['node-name'] === g.node)!.image['virtual-size'];
  await new Promise<void>((resolve, reject) =>
    spawn('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(size)]).once('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`qemu-img create failed: exit code ${code}`)),
    ),
  );
  await monCmd(socket, 'blockdev-add', {
    'node-name': target,
    driver: 'qcow2',
    file: { driver: 'file', filename: file },
  });
  try {
    await monCmd(socket, 'blockdev-backup', {
      'job-id': jobId,
      device: g.node,
      target,
      sync: 'full',
      speed,
      'auto-dismiss': false,
    });
    log('INFO', `started backup task '${jobId}'`);
    for (;;) {
      const jobs = await monCmd<Array<{ device: string; status: string; offset: number; len: number; error?: string }>>(
        socket,
        'query-block-jobs',
      );
      const job = jobs.find((j) => j.device === jobId);
      if (!job) throw new Error('got unexpected status: the backup job is gone');
      if (job.status === 'concluded') {
        await monCmd(socket, 'job-dismiss', { id: jobId });
        if (job.error) throw new Error(job.error);
        log('INFO', `status: 100% (${job.len}/${job.len})`);
        return;
      }
      log('INFO', `status: ${job.len ? Math.floor((job.offset * 100) / job.len) : 0}% (${job.offset}/${job.len})`);
      await sleep(1000);
    }
  } finally {
    await monCmd(socket, 'blockdev-del', { 'node-name': target }).catch(() => {});
  }
}

function archiveLxc(g: VzdumpGuest & { vmtype: 'lxc' }, file: string, bwlimitKib: number | undefined): Promise<void> {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const pipeline = [
    `tar cpf - --totals --one-file-system --directory=${q(g.rootDir)} .`,
    ...(bwlimitKib ? [`cstream -t ${bwlimitKib * 1024}`] : []),
    `gzip > ${q(file)}`,
  ].join(' | ');
  const child = spawn('/bin/bash', ['-c', `set -o pipefail; ${pipeline}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.on('data', (d: Buffer) => log('INFO', d.toString().trim()));
  return new Promise((resolve, reject) =>
    child.once('close', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`command '${pipeline}' failed: ${signal ? `got signal ${signal}` : `exit code ${code}`}`)),
    ),
  );
}

async function backupGuest(f: VzdumpJobFile, g: VzdumpGuest, bwlimitKib: number | undefined): Promise<boolean> {
  const ext = g.vmtype === 'qemu' ? 'vma' : 'tar.gz';
  const stamp = new Date().toISOString().replace(/[-:]/g, '_').replace('T', '-').slice(0, 19);
  const targetFile = path.join(f.job.dumpdir, `vzdump-${g.vmtype}-${g.vmid}-${stamp}.${ext}`);
  const task: VzdumpTask = { mode: 'snapshot', vmid: g.vmid, vmtype: g.vmtype, hostname: g.hostname };
  const started = Date.now();
  try {
    log('INFO', `Starting Backup of VM ${g.vmid} (${g.vmtype})`);
    log('INFO', 'status = running');
    log('INFO', 'backup mode: snapshot');
    if (bwlimitKib) log('INFO', `bandwidth limit: ${bwlimitKib} KB/s`);
    log('INFO', `ionice priority: ${setting(f.vzdumpConf, 'ionice') ?? 7}`);
    await hook(f, 'backup-start', task);
    await hook(f, 'pre-stop', task);
    await hook(f, 'pre-restart', task);
    await hook(f, 'post-restart', task);
    log('INFO', `creating vzdump archive '${targetFile}'`);
    const dat = targetFile.replace(/\.[^.]+$/, '.dat');
    if (g.vmtype === 'qemu') await archiveQemu(f, g, dat, (bwlimitKib ?? 0) * 1024);
    else await archiveLxc(g, dat, bwlimitKib);
    fs.renameSync(dat, targetFile);
    log('INFO', `archive file size: ${fs.statSync(targetFile).size}`);
    await hook(f, 'backup-end', { ...task, target: targetFile });
    log('INFO', `Finished Backup of VM ${g.vmid} (${Math.round((Date.now() - started) / 1000)}s)`);
    return true;
  } catch (err) {
    log('ERROR', `Backup of VM ${g.vmid} failed - ${(err as Error).message}`);
    await hook(f, 'backup-abort', task).catch(() => {});
    return false;
  } finally {
    await hook(f, 'log-end', task).catch(() => {});
  }
}

async function main(): Promise<number> {
  const f = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as VzdumpJobFile;
  const bwlimitKib = setting(f.vzdumpConf, 'bwlimit');
  log('INFO', `starting new backup job: vzdump ${f.guests.map((g) => g.vmid).join(' ')} --mode snapshot`);
  try {
    await hook(f, 'job-start');
  } catch (err) {
    log('ERROR', `Backup job failed - ${(err as Error).message}`);
    await hook(f, 'job-abort').catch(() => {});
    return 255;
  }
  let errors = 0;
  for (const g of f.guests) if (!(await backupGuest(f, g, bwlimitKib))) errors++;
  await hook(f, 'job-end').catch((err: Error) => log('ERROR', err.message));
  log('INFO', errors ? 'Backup job finished with errors' : 'Backup job finished successfully');
  return errors ? 255 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    log('ERROR', err.message);
    process.exit(255);
  },
);
