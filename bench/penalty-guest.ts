/**
 * The in-guest run of `npm run bench:penalty`: the same foreground and backup as the host run, inside a
 * TCG guest of the VM harness (test/vm/harness) whose own kernel gives cgroup v2 with the cpu, io and
 * memory controllers (this machine's host runs cgroup v1). A coordinator runs on the host; the guest's
 * headroom-agent (enrolled, over mutual TLS) runs the backup under its token's budget, its group held by
 * cpu.max, io.max (the virtio data disk's) and memory.high.
 *
 * The guest's data disk carries this bench's measuring files, Node itself (the guest has only busybox and
 * the agent) and the data set; each phase runs penalty-guest-run.js there, after the guest's page cache is
 * dropped. Phases: no backup; unthrottled; each fixed budget (the policy's budget, no thresholds); Headroom
 * adaptive (budgetMode adaptive between the lowest and the highest fixed budget, driven by the guest's PSI).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unary } from '../common/client/connection';
import { DEFAULT_POLICY } from '../coordinator/domain/policy';
import { WAIT_THRESHOLDS_OFF } from '../test/helpers/wait-signals';
import { type AgentGuest, startAgentGuest } from '../test/vm/harness/agent-guest';
import { makeExt4Disk } from '../test/vm/harness/disk';
import { vmTempDir } from '../test/vm/harness/guest';
import { GUEST_AGENT_CONFIG } from '../test/vm/harness/guest-init';
import { generateDataSet, type PhaseResult } from './penalty-measure';
import type { Phase, PhaseKind } from './penalty-report';

const MiB = 1024 * 1024;
const HOST = 'pen-bench-host';
const MOUNT = '/mnt/data';
/** The measuring files penalty-guest-run.js needs, from dist/bench. */
const GUEST_FILES = [
  'penalty-guest-run.js',
  'penalty-measure.js',
  'penalty-load.js',
  'penalty-foreground.js',
  'proc-stats.js',
];

/** One budget: CPU in percent of one core, I/O in bytes/s. */
export interface GuestBudget {
  cpuPercent: number;
  ioBytesPerSec: number;
}

export interface GuestPenaltyOptions {
  dataBytes: number;
  ratePerSec: number;
  baselineMs: number;
  worksetMiB: number;
  memoryMiB: number;
  /** The fixed budgets, lowest first; Headroom adapts between the first and the last. */
  fixed: GuestBudget[];
  progress(line: string): void;
  /** Receives the function that tears the guest down, for an interrupted run. */
  onStop(stop: () => Promise<void>): void;
}

const budgetText = (b: GuestBudget) => `${b.cpuPercent}% cpu, ${(b.ioBytesPerSec / MiB).toFixed(0)} MiB/s`;

/** No threshold on: the budget stays where the policy puts it. */
const FIXED_POLICY = {
  ...WAIT_THRESHOLDS_OFF,
  throttleAboveCpuPercent: 0,
  pauseAboveCpuPercent: 0,
  resumeBelowCpuPercent: 0,
  budgetMode: 'fixed' as const,
};

/** The product's pressure thresholds, and the adaptive controller raising every few reports. */
const ADAPTIVE_POLICY = {
  ...Object.fromEntries(
    Object.keys(WAIT_THRESHOLDS_OFF).map((k) => [k, DEFAULT_POLICY[k as keyof typeof WAIT_THRESHOLDS_OFF]]),
  ),
  budgetMode: 'adaptive' as const,
  // The default 30 s between raises suits backups of hours; this one lasts a minute or two.
  budgetDwellMs: 3_000,
  maxPauseMs: 0,
};

export async function runGuestPenalty(o: GuestPenaltyOptions): Promise<{ intro: string[]; phases: Phase[] }> {
  const work = vmTempDir('pen-bench-');
  const tree = path.join(work, 'tree');
  const bench = path.join(tree, 'bench');
  fs.mkdirSync(bench, { recursive: true });
  for (const f of GUEST_FILES) fs.copyFileSync(path.join(__dirname, f), path.join(bench, f));
  fs.copyFileSync(process.execPath, path.join(bench, 'node'));
  fs.chmodSync(path.join(bench, 'node'), 0o755);
  o.progress(`guest: generating ${(o.dataBytes / MiB).toFixed(0)} MiB of data for its disk`);
  generateDataSet(path.join(tree, 'data'), o.dataBytes);
  const nodeMiB = fs.statSync(process.execPath).size / MiB;
  // Data, its gzip'd copy, the working set, Node, and room for ext4 and the probe.
  const sizeMiB = Math.ceil((o.dataBytes * 2) / MiB + o.worksetMiB + nodeMiB + 256);
  const disk = makeExt4Disk(path.join(work, 'data.qcow2'), { sizeMiB, dirs: { '.': tree } });
  fs.rmSync(tree, { recursive: true, force: true });

  o.progress('guest: booting (TCG) with the agent connected to a coordinator on the host');
  let s: AgentGuest | undefined;
  const stop = async () => {
    await s?.close();
    fs.rmSync(work, { recursive: true, force: true });
  };
  o.onStop(stop);
  try {
    s = await startAgentGuest({
      host: HOST,
      name: `pen-bench-${process.pid}`,
      memoryMiB: o.memoryMiB,
      policyLines: ['  reportInterval: 1s'],
      agentConfig: [],
      disks: () => [{ path: disk, mountPoint: MOUNT }],
    });
    const guest = s.guest!;
    const admin = s.admin.admin;
    const setPolicy = (fields: Record<string, unknown>) =>
      unary(admin.SetPolicy.bind(admin), { host: HOST, ...fields });
    const kernel = (await guest.sh('uname -r')).trim();
    const controllers = (await guest.sh('cat /sys/fs/cgroup/cgroup.controllers')).trim();

    const phases: Phase[] = [];
    const tar = `tar -C ${MOUNT}/data -cf - . | gzip -1 > ${MOUNT}/backup.tar.gz`;
    const phase = async (kind: PhaseKind, name: string, how: string) => {
      o.progress(`guest: ${name}`);
      await guest.sh(`rm -f ${MOUNT}/backup.tar.gz; sync; echo 3 > /proc/sys/vm/drop_caches`);
      const r = await guest.run(
        `${MOUNT}/bench/node ${MOUNT}/bench/penalty-guest-run.js '${name}' ${MOUNT} ${o.ratePerSec} ${o.worksetMiB} ${how}`,
      );
      const out = r.output.toString();
      const line = /^result (.*)$/m.exec(out);
      if (r.code !== 0 || !line) throw new Error(`the guest's phase "${name}" failed (${r.code}):\n${out}`);
      const result = JSON.parse(line[1]) as PhaseResult;
      phases.push({ ...result, kind });
      o.progress(
        `guest:    HTTP p99 ${result.http.p99.toFixed(1)} ms, disk p99 ${result.disk.p99.toFixed(1)} ms, ` +
          `working-set hits ${result.worksetHitPercent.toFixed(1)}%` +
          (result.backupSeconds === undefined ? '' : `, backup ${result.backupSeconds.toFixed(1)} s`),
      );
      return result;
    };
    const underAgent = `'headroom-agent exec --config ${GUEST_AGENT_CONFIG} --job penalty-backup -- sh -c "${tar}"'`;
    const budgetReport = async () => {
      const { agents } = await unary(admin.ListAgents.bind(admin), { host: HOST });
      return agents.find((a) => a.vm === s!.uuid);
    };

    await phase('baseline', '0. no backup', `--for ${o.baselineMs}`);
    await phase('unthrottled', 'a. unthrottled', `--run '${tar}'`);
    for (const [i, b] of o.fixed.entries()) {
      await setPolicy({ ...FIXED_POLICY, budgetCpuPercent: b.cpuPercent, budgetIoBytesPerSec: b.ioBytesPerSec });
      await phase('fixed', `f${i + 1}. fixed ${budgetText(b)}`, `--run ${underAgent}`);
    }
    const low = o.fixed[0];
    const high = o.fixed[o.fixed.length - 1];
    await setPolicy({
      ...ADAPTIVE_POLICY,
      budgetCpuPercent: high.cpuPercent,
      budgetIoBytesPerSec: high.ioBytesPerSec,
      throttledCpuPercent: low.cpuPercent,
      throttledIoBytesPerSec: low.ioBytesPerSec,
    });
    // The budget the controller gave the backup, as the agent reports it, sampled while it runs.
    const seen = new Set<string>();
    let signal = '';
    let detail = '';
    const sampler = setInterval(() => {
      void budgetReport()
        .then((a) => {
          signal = a?.loadSignal || signal;
          const b = a?.budgets[0];
          if (!b) return;
          detail = b.detail;
          seen.add(
            b.paused
              ? 'paused'
              : budgetText({
                  cpuPercent: b.budget?.cpuPercent ?? 0,
                  ioBytesPerSec: Number(b.budget?.ioBytesPerSec ?? 0),
                }),
          );
        })
        .catch(() => {});
    }, 1_000);
    try {
      await phase('headroom', `b. Headroom adaptive`, `--run ${underAgent}`);
    } finally {
      clearInterval(sampler);
    }
    phases[phases.length - 1].notes.push(
      `between ${budgetText(low)} and ${budgetText(high)}, signal in force: ${signal || 'not reported'}`,
      `budgets seen (every second): ${[...seen].join(' | ') || 'none'}`,
      `enforced by cgroup v2: ${detail || 'not reported'}`,
    );
    const intro = [
      `in-guest run: TCG guest, 1 vCPU, ${o.memoryMiB} MiB, kernel ${kernel}, cgroup v2 controllers: ${controllers}`,
      `foreground  HTTP at ${o.ratePerSec} requests/s, disk probe (4 KiB write + fdatasync every 50 ms), working set of ${o.worksetMiB} MiB reread at 32 MiB/s`,
      `backup      tar | gzip -1 of ${(o.dataBytes / MiB).toFixed(0)} MiB on the guest's virtio disk; page cache dropped before each phase`,
      `fixed       ${o.fixed.map(budgetText).join('; ')} (memory.high: 8 s of the I/O budget, at least 64 MiB)`,
    ];
    return { intro, phases };
  } finally {
    await stop();
  }
}
