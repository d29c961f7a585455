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
import * as os from 'node:os';
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
const CGROUP = '/sys/fs/cgroup';
/** Starts the agent in the /agent cgroup: `sh AGENT_IN_CGROUP CONFIG`. */
const AGENT_IN_CGROUP = '/tmp/agent-in-cgroup.sh';
const MOUNT = '/mnt/data';
const JOB = 'penalty-backup';
/** The job's period, s: short, so that it starts soon after the daemon is up. */
const JOB_EVERY_S = 5;
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
  /** QEMU's threads at this nice value (0: as they are). */
  nice: number;
  /** Where the data disk is made: /dev/shm keeps the host's disk out of the guest's latencies. */
  diskDir: string;
  progress(line: string): void;
  /** Receives the function that tears the guest down, for an interrupted run. */
  onStop(stop: () => Promise<void>): void;
}

/** The pid of the qemu-system-x86_64 started with `-name NAME` (libvirt's `-name guest=NAME,...`). */
function qemuOf(name: string): number {
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const named = argv[argv.indexOf('-name') + 1]?.split(',') ?? [];
      if (argv[0].endsWith('qemu-system-x86_64') && (named.includes(name) || named.includes(`guest=${name}`)))
        return Number(pid);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no qemu-system-x86_64 -name ${name} running`);
}

/** Sets every thread of a process (the vCPU's included) to a nice value; returns how many. */
function reniceProcess(pid: number, nice: number): number {
  const threads = fs.readdirSync(`/proc/${pid}/task`);
  for (const tid of threads) os.setPriority(Number(tid), nice);
  return threads.length;
}

export const budgetText = (b: GuestBudget) => `${b.cpuPercent}% cpu, ${(b.ioBytesPerSec / MiB).toFixed(0)} MiB/s`;

/**
 * Grants as soon as asked: the job due every few seconds is how the bench starts it at once, not a plan
 * (the planner put one such run half an hour out).
 */
const NOW_POLICY = { followPlan: false };

/** No threshold on: the budget stays where the policy puts it. */
const FIXED_POLICY = {
  ...NOW_POLICY,
  ...WAIT_THRESHOLDS_OFF,
  throttleAboveCpuPercent: 0,
  pauseAboveCpuPercent: 0,
  resumeBelowCpuPercent: 0,
  budgetMode: 'fixed' as const,
};

/** The adaptive controller raising every few reports, never pausing (the frontier compares budgets). */
const ADAPTIVE_POLICY = {
  ...NOW_POLICY,
  budgetMode: 'adaptive' as const,
  // The default 30 s between raises suits backups of hours; this one lasts a minute or two.
  budgetDwellMs: 3_000,
  maxPauseMs: 0,
};

/** Mean PSI avg10 (io some, cpu some, memory full) over the agent's reports in a phase. */
interface PressureBase {
  io: number;
  cpu: number;
  memory: number;
}

/**
 * The product's default pressure thresholds, each raised by what the VM's own work stalls with no backup
 * (`base`): on one vCPU under TCG the foreground alone keeps cpu `some` at a third, so the defaults would
 * hold the backup at its floor, and keep it from starting, whatever it does. They become the guest's own
 * thresholds (the policy's vmPressure), as for any VM that runs near capacity.
 */
export function thresholdsAbove(base: PressureBase): Record<string, number> {
  const d = DEFAULT_POLICY;
  const out: Record<string, number> = {};
  for (const [name, b] of [
    ['IoPressurePercent', base.io],
    ['CpuPressurePercent', base.cpu],
    ['MemoryPressurePercent', base.memory],
  ] as const) {
    const pause = Math.min(100, Math.ceil(d[`pauseAbove${name}`] + b));
    const throttle = Math.min(pause - 1, Math.ceil(d[`throttleAbove${name}`] + b));
    out[`pauseAbove${name}`] = pause;
    out[`throttleAbove${name}`] = throttle;
    out[`resumeBelow${name}`] = Math.min(throttle - 1, Math.ceil(d[`resumeBelow${name}`] + b));
  }
  return out;
}

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
  const diskDir = fs.mkdtempSync(path.join(o.diskDir, 'pen-bench-'));
  fs.chmodSync(diskDir, 0o755);
  const disk = makeExt4Disk(path.join(diskDir, 'data.qcow2'), { sizeMiB, dirs: { '.': tree } });
  fs.rmSync(tree, { recursive: true, force: true });

  o.progress('guest: booting (TCG) with the agent connected to a coordinator on the host');
  let s: AgentGuest | undefined;
  const name = `pen-bench-${process.pid}`;
  const stop = async () => {
    await s?.close();
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(diskDir, { recursive: true, force: true });
  };
  o.onStop(stop);
  try {
    s = await startAgentGuest({
      host: HOST,
      name,
      memoryMiB: o.memoryMiB,
      policyLines: ['  reportInterval: 1s'],
      agentConfig: [],
      disks: () => [{ path: disk, mountPoint: MOUNT }],
    });
    const guest = s.guest!;
    const favoured = o.nice === 0 ? 0 : reniceProcess(qemuOf(name), o.nice);
    const admin = s.admin.admin;
    const setPolicy = (fields: Record<string, unknown>) =>
      unary(admin.SetPolicy.bind(admin), { host: HOST, ...fields });
    const kernel = (await guest.sh('uname -r')).trim();
    const controllers = (await guest.sh('cat /sys/fs/cgroup/cgroup.controllers')).trim();

    // As under systemd: the workload, the agent and the backups each in a cgroup of their own, so that the
    // agent reads the workload's pressure apart from the backups' stalls (workload-pressure.ts). The daemon
    // /init started in the root cgroup makes way for one per phase, in /agent.
    await guest.sh(
      [
        `echo "+cpu +io +memory" > ${CGROUP}/cgroup.subtree_control`,
        `mkdir -p ${CGROUP}/workload ${CGROUP}/agent ${CGROUP}/backups`,
        // The agent and the backups' parent yield the CPU to the workload, as the shipped unit's CPUWeight=1
        // makes them (docs/planning-and-budgets.md): at an equal weight a backup takes half the vCPU
        // whatever its budget, and the agent's start (seconds of CPU under TCG) stalls the workload.
        `echo 1 > ${CGROUP}/backups/cpu.weight`,
        `echo 1 > ${CGROUP}/agent/cpu.weight`,
        'kill $(pidof headroom-agent); while pidof headroom-agent >/dev/null; do sleep 0.2; done',
        `printf '#!/bin/sh\necho $$ > ${CGROUP}/agent/cgroup.procs\nexec headroom-agent run --config "$1"\n' > ${AGENT_IN_CGROUP}`,
      ].join('\n'),
    );
    const phases: Phase[] = [];
    const tar = `tar -C ${MOUNT}/data -cf - . | gzip -1 > ${MOUNT}/backup.tar.gz`;
    const phase = async (kind: PhaseKind, name: string, how: string) => {
      o.progress(`guest: ${name}`);
      await guest.sh(`rm -f ${MOUNT}/backup.tar.gz; sync; echo 3 > /proc/sys/vm/drop_caches`);
      const r = await guest.run(
        `echo $$ > ${CGROUP}/workload/cgroup.procs; exec ${MOUNT}/bench/node ${MOUNT}/bench/penalty-guest-run.js '${name}' ${MOUNT} ${o.ratePerSec} ${o.worksetMiB} ${how}`,
      );
      const out = r.output.toString();
      const line = /^result (.*)$/m.exec(out);
      if (r.code !== 0 || !line) throw new Error(`the guest's phase "${name}" failed (${r.code}):\n${out}`);
      const result = JSON.parse(line[1]) as PhaseResult;
      phases.push({ ...result, kind });
      o.progress(
        `guest:    HTTP p99 ${result.http.p99.toFixed(1)} ms, disk p99 ${result.disk.p99.toFixed(1)} ms, ` +
          `working-set hits ${result.worksetHitPercent.toFixed(1)}%, guest busy ${result.machineBusyPercent.toFixed(0)}%` +
          (result.backupSeconds === undefined ? '' : `, backup ${result.backupSeconds.toFixed(1)} s`),
      );
      return result;
    };
    // The backups under Headroom are the daemon's scheduled job, as in production: `headroom-agent exec`
    // has no session, so the coordinator's budget changes would not reach it.
    const agentYaml = `${(await guest.sh(`cat ${GUEST_AGENT_CONFIG}`)).trimEnd()}\nbudget:\n  cgroupParent: /backups\n`;
    await guest.sh(`cat > /tmp/pen-base-agent.yaml <<'EOF'\n${agentYaml}EOF`);
    // The job is due every few seconds: the first time after the daemon is up (it starts in seconds to tens
    // of seconds under TCG, beside the foreground) is the phase's run; the shell stops the daemon when it
    // logs that run's end.
    const template = [
      agentYaml.trimEnd(),
      'jobs:',
      `  - name: ${JOB}`,
      `    schedule: "*/${JOB_EVERY_S} * * * * *"`,
      '    window: 1h',
      '    expectedDuration: 5m',
      `    command: ${JSON.stringify(['sh', '-c', tar])}`,
      '',
    ].join('\n');
    await guest.sh(`cat > /tmp/pen-agent.yaml <<'EOF'\n${template}EOF`);
    const log = '/tmp/pen-agent.log';
    const underAgent =
      `'rm -f ${log}; sh ${AGENT_IN_CGROUP} /tmp/pen-agent.yaml </dev/null >${log} 2>&1 & a=$!; ` +
      `while kill -0 $a 2>/dev/null && ! grep -q "job finished" ${log}; do sleep 0.2; done; kill $a; wait $a; true'`;
    /**
     * The phase's run as the coordinator saw it, GRANTED to RELEASED: the longest since `since` (a next
     * run may have begun before the daemon was stopped; it is cancelled at once).
     */
    const tokenSeconds = async (since: number) => {
      const { events } = await unary(admin.ListHistory.bind(admin), { host: HOST, limit: 1000 });
      const granted = new Map<string, number>();
      let longest = 0;
      for (const e of events.filter((x) => x.job === JOB && Number(x.atUnixMs) >= since)) {
        if (e.type === 'HISTORY_EVENT_TYPE_GRANTED') granted.set(e.tokenId, Number(e.atUnixMs));
        const start = granted.get(e.tokenId);
        if (e.type === 'HISTORY_EVENT_TYPE_RELEASED' && start !== undefined)
          longest = Math.max(longest, (Number(e.atUnixMs) - start) / 1000);
      }
      if (longest === 0) throw new Error(`no GRANTED and RELEASED of ${JOB} in the history`);
      return longest;
    };
    const agentPhase = async (kind: PhaseKind, name: string) => {
      const since = Date.now();
      const result = await phase(kind, name, `--run ${underAgent}`);
      phases[phases.length - 1].backupSeconds = await tokenSeconds(since);
      phases[phases.length - 1].notes.push("backup took: from GRANTED to RELEASED in the coordinator's history");
      return result;
    };
    /** Samples what the agent reports every second while `run` runs: its PSI, signal and backup budgets. */
    const watch = async <T>(run: () => Promise<T>) => {
      const seen = { psi: [] as PressureBase[], signal: '', detail: '', budgets: new Set<string>() };
      const sampler = setInterval(() => {
        void unary(admin.ListAgents.bind(admin), { host: HOST })
          .then(({ agents }) => {
            const a = agents.find((x) => x.vm === s!.uuid);
            const l = a?.lastLoad;
            if (l?.ioPressure && l.cpuPressure && l.memoryPressure)
              seen.psi.push({
                io: l.ioPressure.someAvg10,
                cpu: l.cpuPressure.someAvg10,
                memory: l.memoryPressure.fullAvg10,
              });
            seen.signal = a?.loadSignal || seen.signal;
            const b = a?.budgets[0];
            if (!b) return;
            seen.detail = b.detail;
            const budget = {
              cpuPercent: b.budget?.cpuPercent ?? 0,
              ioBytesPerSec: Number(b.budget?.ioBytesPerSec ?? 0),
            };
            seen.budgets.add(b.paused ? 'paused' : budgetText(budget));
          })
          .catch(() => {});
      }, 1_000);
      try {
        return { result: await run(), seen };
      } finally {
        clearInterval(sampler);
      }
    };
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

    // The baseline's PSI is reported by a daemon with no job, from /agent as in the other phases.
    await guest.sh(`sh ${AGENT_IN_CGROUP} /tmp/pen-base-agent.yaml </dev/null >/tmp/pen-base-agent.log 2>&1 &`);
    const baseline = await watch(() => phase('baseline', '0. no backup', `--for ${o.baselineMs}`));
    const psi = baseline.seen.psi;
    if (psi.length === 0) throw new Error("the guest's agent reported no PSI during the baseline");
    const base: PressureBase = {
      io: mean(psi.map((p) => p.io)),
      cpu: mean(psi.map((p) => p.cpu)),
      memory: mean(psi.map((p) => p.memory)),
    };
    phases[0].notes.push(
      `PSI with no backup (mean avg10 of ${psi.length} reports): io some ${base.io.toFixed(1)}%, cpu some ${base.cpu.toFixed(1)}%, memory full ${base.memory.toFixed(1)}%`,
    );
    await guest.sh('kill $(pidof headroom-agent); while pidof headroom-agent >/dev/null; do sleep 0.2; done');
    await phase('unthrottled', 'a. unthrottled', `--run '${tar}'`);
    for (const [i, b] of o.fixed.entries()) {
      await setPolicy({ ...FIXED_POLICY, budgetCpuPercent: b.cpuPercent, budgetIoBytesPerSec: b.ioBytesPerSec });
      await agentPhase('fixed', `f${i + 1}. fixed ${budgetText(b)}`);
    }
    const low = o.fixed[0];
    const high = o.fixed[o.fixed.length - 1];
    const thresholds = thresholdsAbove(base);
    await setPolicy({ vm: s.uuid, ...thresholds });
    await setPolicy({
      ...ADAPTIVE_POLICY,
      budgetCpuPercent: high.cpuPercent,
      budgetIoBytesPerSec: high.ioBytesPerSec,
      throttledCpuPercent: low.cpuPercent,
      throttledIoBytesPerSec: low.ioBytesPerSec,
    });
    const adaptive = await watch(() => agentPhase('headroom', 'b. Headroom adaptive'));
    const t = (name: string) =>
      `${thresholds[`throttleAbove${name}`]}/${thresholds[`pauseAbove${name}`]}/${thresholds[`resumeBelow${name}`]}%`;
    phases[phases.length - 1].notes.push(
      `between ${budgetText(low)} and ${budgetText(high)}, signal in force: ${adaptive.seen.signal || 'not reported'}`,
      `the VM's own thresholds (throttle/pause/resume) = defaults + its PSI with no backup: io ${t('IoPressurePercent')}, cpu ${t('CpuPressurePercent')}, memory ${t('MemoryPressurePercent')}`,
      `budgets seen (every second): ${[...adaptive.seen.budgets].join(' | ') || 'none'}`,
      `enforced by ${adaptive.seen.detail || 'an unreported mechanism'}`,
    );
    const intro = [
      `in-guest run: TCG guest, 1 vCPU, ${o.memoryMiB} MiB, kernel ${kernel}, cgroup v2 controllers: ${controllers}`,
      `host        QEMU's ${favoured} threads at nice ${o.nice}; load average ${os.loadavg()[0].toFixed(1)} at the end`,
      `foreground  HTTP at ${o.ratePerSec} requests/s, disk probe (4 KiB write + fdatasync every 50 ms), working set of ${o.worksetMiB} MiB reread at 32 MiB/s`,
      `backup      tar | gzip -1 of ${(o.dataBytes / MiB).toFixed(0)} MiB on the guest's virtio disk (a qcow2 in ${o.diskDir}); page cache dropped before each phase`,
      `fixed       ${o.fixed.map(budgetText).join('; ')} (memory.high: 8 s of the I/O budget, at least 64 MiB)`,
      `cgroups     the foreground in /workload, the agent in /agent, its backups under /backups (both at cpu.weight 1): the agent reports /workload's PSI`,
    ];
    return { intro, phases };
  } finally {
    await stop();
  }
}
