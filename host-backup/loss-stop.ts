/**
 * What stops a backup that runs under a hold (`headroomctl hold`, hold-holder.ts) when its token is lost:
 * the backup is another program's (vzdump), so the holder reaches into it the way that program is built.
 *
 * - A QEMU VM: vzdump asks the VM's own QEMU to copy (QMP `backup` on /var/run/qemu-server/VMID.qmp,
 *   PVE::VZDump::QemuServer) and polls `query-backup` once a second; `backup-cancel` on that socket makes
 *   the poll see the error and vzdump fail that VM (its log: "ERROR: Backup of VM N failed - …"). A stock
 *   QEMU has no `backup-cancel`: its block jobs are cancelled instead (`block-job-cancel`).
 * - A container: vzdump runs `tar … | cstream … | compressor` as its own child (PVE::VZDump::LXC archive,
 *   through run_command); SIGTERM to vzdump's child processes makes that command fail, and vzdump that VM.
 */
import { type ProcReader, parseProcStat, realProc } from '../common/backup-run/budget/process-usage';
import { QmpClient, QmpCommandError } from './hypervisor/qmp-client';

export interface LossStop {
  /** For people, before it is needed: "cancel the backup in the QEMU of /run/qemu-server/101.qmp". */
  readonly what: string;
  /** Stops the backup; resolves to what was done. Never rejects. */
  stop(): Promise<string>;
}

/** Cancels the backup that the QEMU at `socket` runs. */
export function cancelQemuBackup(socket: string): LossStop {
  return {
    what: `cancel the backup in the QEMU of ${socket}`,
    async stop() {
      let client: QmpClient | undefined;
      try {
        client = await QmpClient.connect(socket);
        try {
          await client.execute('backup-cancel');
          return `cancelled the backup in the QEMU of ${socket} (backup-cancel)`;
        } catch (err) {
          if (!(err instanceof QmpCommandError && err.errorClass === 'CommandNotFound')) throw err;
        }
        const jobs = await client.execute<Array<{ device: string }>>('query-block-jobs');
        for (const j of jobs) await client.execute('block-job-cancel', { device: j.device, force: true });
        return `cancelled ${jobs.length} block job(s) in the QEMU of ${socket} (block-job-cancel)`;
      } catch (err) {
        return `could not cancel the backup in the QEMU of ${socket}: ${(err as Error).message}`;
      } finally {
        client?.close();
      }
    },
  };
}

/** The live descendants of `pid`, children before their own children. */
export function descendants(pid: number, proc: ProcReader = realProc): number[] {
  const children = new Map<number, number[]>();
  for (const name of proc.list()) {
    if (!/^\d+$/.test(name)) continue;
    const text = proc.read(`${name}/stat`);
    const stat = text === undefined ? undefined : parseProcStat(text);
    if (!stat || stat.state === 'Z' || stat.state === 'X') continue;
    children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), Number(name)]);
  }
  const out: number[] = [];
  for (let i = -1; i < out.length; i++) out.push(...(children.get(i < 0 ? pid : out[i]) ?? []));
  return out;
}

/** Stops (SIGTERM) every process that `pid` (the backup tool) runs: the copy it runs as its child. */
export function stopChildrenOf(pid: number, proc: ProcReader = realProc): LossStop {
  return {
    what: `stop what process ${pid} runs (SIGTERM)`,
    async stop() {
      const pids = descendants(pid, proc);
      const names = pids.map((p) => {
        const comm = proc.read(`${p}/comm`)?.trim();
        try {
          process.kill(p, 'SIGTERM');
        } catch {
          // gone meanwhile
        }
        return `${comm ?? '?'} (${p})`;
      });
      return names.length > 0
        ? `stopped what process ${pid} ran: ${names.join(', ')}`
        : `process ${pid} ran nothing to stop`;
    },
  };
}
