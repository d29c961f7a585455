/**
 * `headroomctl backup show|start|cancel|runs`: one backup of the catalog with its chain (from --dir or the
 * coordinator's), and the hypervisor backups the coordinator runs itself with the drivers of its
 * coordinator.yaml (AdminService.StartBackup, CancelBackup, ListBackupRuns).
 */
import type { BackupInfo__Output, BackupRun__Output } from '../../proto/generated/headroom/v1';
import { parseString } from '../../common/util/cli-args';
import { DIR_OPTION, WHERE_HELP, catalogSource } from '../catalog-source';
import type { Command } from '../command';
import { type Context, note, print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { formatBytes, formatClock, formatSpan } from '../../common/util/human';
import { formatTable } from '../table';
import { kindName } from './backups';
import { backupRunState, consistency } from '../../proto/enums';

/** How often `backup start --wait` asks how the run is doing. */
const WAIT_POLL_MS = 500;

function backupLines(b: BackupInfo__Output, now: number): string[] {
  const lines = [
    `backup ${b.id}`,
    `  vm/disk      ${b.vm}/${b.disk}`,
    `  kind         ${kindName(b)}${b.fullReason ? ` (${b.fullReason})` : ''}`,
    ...(b.parentId ? [`  parent       ${b.parentId}`] : []),
    `  chain        ${b.chainId}: ${b.chainProblem || 'can be read back'}`,
    `  taken        ${formatClock(b.takenUnixMs, now)}, took ${formatSpan(b.durationMs)}`,
    `  copied       ${formatBytes(b.bytes)}; file ${formatBytes(b.fileBytes)}; disk ${formatBytes(b.virtualSize)}`,
    `  consistency  ${consistency.show(b.consistency).toLowerCase()}`,
    `  bitmap       ${b.bitmap}${b.bitmapPersistent ? ' (persistent)' : ''}`,
    `  file         ${b.path}`,
    `  sha256       ${b.sha256}`,
    `  run          ${b.setId}`,
  ];
  return lines;
}

export const backupShowCommand: Command = {
  name: 'backup show',
  examples: [
    'backup show 20261129T070000Z-full-1a2b3c --dir /var/backups/headroom',
    'backup show 20261129T070000Z-full-1a2b3c --vm web1',
  ],
  summary: "one backup: its manifest and the chain it reads through (--dir DIR: local; else the coordinator's)",
  synopsis: 'ID [--dir DIR] [--vm V]',
  description: [
    'ID is a backup id as `backups` lists it. --json prints the manifest as it is on disk too.',
    '',
    WHERE_HELP,
  ].join('\n'),
  options: [
    DIR_OPTION,
    { name: 'vm', value: 'V', help: 'the VM it belongs to (looks only there)', parse: parseString },
  ],
  positionals: ['ID'],
  async run(ctx, args) {
    const id = args.positionals[0];
    if (!id) throw new UsageError('missing ID');
    const res = await catalogSource(ctx, args).get(id, args.get<string>('vm') ?? '');
    if (ctx.json) {
      printJson(ctx, res);
      return 0;
    }
    const now = ctx.now();
    print(ctx, backupLines(res.backup!, now).join('\n'));
    print(ctx, '');
    if (res.chain.length === 0) print(ctx, 'chain: broken, it cannot be restored');
    else {
      print(ctx, `chain (${res.chain.length}, oldest first; restoring ${res.backup!.id} reads all of them):`);
      print(
        ctx,
        formatTable(
          [
            { header: 'TAKEN' },
            { header: 'KIND' },
            { header: 'ID' },
            { header: 'FILE', align: 'right' },
            { header: 'STATE' },
          ],
          res.chain.map((c) => [
            formatClock(c.takenUnixMs, now),
            kindName(c),
            c.id,
            formatBytes(c.fileBytes),
            c.chainProblem || 'ok',
          ]),
        ),
      );
    }
    return 0;
  },
};

function runLine(r: BackupRun__Output, now: number): string {
  const state = backupRunState.show(r.state).toLowerCase();
  const when = r.endedUnixMs
    ? `ended ${formatClock(r.endedUnixMs, now)}`
    : `started ${formatClock(r.startedUnixMs, now)}`;
  return `${r.vm}  ${state}  run ${r.runId}  job ${r.job}  ${when}: ${r.message}`;
}

const VM_OPTION = { name: 'vm', value: 'V', help: 'the VM (required)', parse: parseString };

/**
 * How long a run may be missing from the list before the wait gives up on it: in a cluster, a member whose
 * etcd lease lapsed withdraws its runs until it has registered anew, a second or two later.
 */
export const MISSING_GRACE_MS = 10_000;

/** Polls the run until it ends; its output tail is printed when it did not succeed. */
export async function waitForEnd(
  ctx: Pick<Context, 'admin' | 'now'>,
  vm: string,
  runId: string,
): Promise<BackupRun__Output> {
  let missingSince: number | undefined;
  for (;;) {
    const { runs } = await ctx.admin('ListBackupRuns', { vm });
    const run = runs.find((r) => r.runId === runId);
    if (run && run.state !== 'BACKUP_RUN_STATE_RUNNING') return run;
    missingSince = run ? undefined : (missingSince ?? ctx.now());
    if (missingSince !== undefined && ctx.now() - missingSince >= MISSING_GRACE_MS)
      throw new Error(`the coordinator no longer knows run ${runId} (did it restart?)`);
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
  }
}

export const backupStartCommand: Command = {
  name: 'backup start',
  examples: ['backup start --vm web1 --wait', 'backup start --vm web1 --full'],
  summary: 'have the coordinator back a VM up now with its configured driver (hypervisorJobs in coordinator.yaml)',
  synopsis: '--vm V [--full] [--wait]',
  description: [
    'The coordinator runs `headroomctl host-backup` for the VM as a child process of its own, with the driver',
    'of the hypervisorJobs entry that lists the VM (qmp: its QMP socket, target and disks; command: its',
    "argv), under a HYPERVISOR token within the job's window, as a manual host-backup would. --wait waits",
    'for the run to end and exits 0 when it succeeded, 1 when not (its last output is printed).',
  ].join('\n'),
  options: [
    VM_OPTION,
    { name: 'full', help: 'qmp driver: a full backup even when an incremental would do' },
    { name: 'wait', help: 'wait for the run to end' },
  ],
  async run(ctx, args) {
    const vm = args.require<string>('vm');
    let run = await ctx.admin('StartBackup', { vm, full: args.flag('full') });
    if (!ctx.json) print(ctx, runLine(run, ctx.now()));
    if (args.flag('wait')) {
      run = await waitForEnd(ctx, vm, run.runId);
      if (!ctx.json) {
        print(ctx, runLine(run, ctx.now()));
        if (run.state !== 'BACKUP_RUN_STATE_SUCCEEDED') note(ctx, `its last output:\n${run.outputTail}`);
      }
    }
    if (ctx.json) printJson(ctx, run);
    return args.flag('wait') && run.state !== 'BACKUP_RUN_STATE_SUCCEEDED' ? 1 : 0;
  },
};

export const backupCancelCommand: Command = {
  name: 'backup cancel',
  examples: ['backup cancel --vm web1 --wait'],
  summary: 'stop the backup of a VM the coordinator started (its block jobs are cancelled; the bitmaps kept)',
  synopsis: '--vm V [--wait]',
  description: 'Sends SIGTERM to the run. --wait waits for it to end.',
  options: [VM_OPTION, { name: 'wait', help: 'wait for the run to end' }],
  async run(ctx, args) {
    const vm = args.require<string>('vm');
    let run = await ctx.admin('CancelBackup', { vm });
    if (args.flag('wait')) run = await waitForEnd(ctx, vm, run.runId);
    if (ctx.json) printJson(ctx, run);
    else print(ctx, runLine(run, ctx.now()));
    return 0;
  },
};

export const backupRunsCommand: Command = {
  name: 'backup runs',
  examples: ['backup runs', 'backup runs --vm web1'],
  summary: 'the backups the coordinator started, newest first',
  synopsis: '[--vm V]',
  options: [{ name: 'vm', value: 'V', help: 'only this VM', parse: parseString }],
  async run(ctx, args) {
    const { runs } = await ctx.admin('ListBackupRuns', { vm: args.get<string>('vm') ?? '' });
    if (ctx.json) printJson(ctx, { runs });
    else if (runs.length === 0) print(ctx, 'no backup runs since the coordinator started');
    else for (const r of runs) print(ctx, runLine(r, ctx.now()));
    return 0;
  },
};
