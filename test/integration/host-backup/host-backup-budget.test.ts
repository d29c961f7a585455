/**
 * `headroomctl host-backup` holding a hypervisor-level command to a budget, everything real: a real
 * coordinator, the real headroomctl, CPU-bound commands whose CPU time is read from /proc independently of
 * headroomctl's own counters, and busy loops that load this machine as a host's VMs would. The command is
 * held to --cpu-limit (compared with the same command run unlimited at the same time), the mechanism is
 * reported, the command is paused while the host is busy and resumed once it is not, and the host identity
 * pki init makes reads its host's policy and holds its command to its budget. (A policy that cannot be
 * read, the budget kept, is test/unit/host-backup/host-budget.test.ts's.)
 *
 * The busy host is made of disk writers and the policy's I/O thresholds: the other sessions on this
 * machine keep its CPU near 100 % on their own, so a pause on CPU could begin without our load and never
 * end, whereas the disk is all but idle without our writers.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cpuPercentOver, cpuUsed } from '../../helpers/budget-measure';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { waitFor } from '../agent/processes';
import { jsonLines, killAll, type RunningCtl, runCtl, spawnCtl } from '../ctl/ctl-process';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A command that writes its pid (its process group's id) to `pidFile` and keeps `loops` loops busy: its
 * own and its children's. Many loops get an unlimited run a fair share of this machine even while other
 * sessions load it.
 */
function burner(pidFile: string, loops = 2): string[] {
  return [
    'sh',
    '-c',
    `echo $$ > ${pidFile}; for i in $(seq 2 ${loops}); do sh -c 'while :; do :; done' & done; while :; do :; done`,
  ];
}

function readPid(pidFile: string): number | undefined {
  try {
    return Number(fs.readFileSync(pidFile, 'utf8')) || undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILLs the process group that `leader` leads (started detached), if it still runs. */
function killGroup(leader: ChildProcess): void {
  try {
    process.kill(-leader.pid!, 'SIGKILL');
  } catch {
    // gone already
  }
}

/**
 * Gives the session that `pid` leads a high CFS autogroup priority. This machine is shared, and the
 * scheduler gives each session one share of it: without this, what an unthrottled command gets is
 * decided by how many other sessions are busy, not by its budget. Both commands compared get the same.
 */
function boost(pid: number): void {
  try {
    fs.writeFileSync(`/proc/${pid}/autogroup`, '-10');
  } catch (err) {
    console.log(`      could not raise the priority of ${pid}: ${(err as Error).message}`);
  }
}

/** `pattern`, matched only in what was written from `offset` on (after a step of the test). */
function after(offset: number, pattern: RegExp): RegExp {
  return new RegExp(`^[\\s\\S]{${offset}}[\\s\\S]*?${pattern.source}`);
}

describe('headroomctl host-backup under a budget', function () {
  this.timeout(180_000);
  let coordinator: RunningCoordinator;
  const workload: ChildProcess[] = [];
  const ctl = (...args: string[]) => runCtl(['--coordinator', coordinator.address, ...args]);
  const started: RunningCtl[] = [];
  const hostBackup = (args: string[]): RunningCtl => {
    const hb = spawnCtl(['--coordinator', coordinator.address, ...args]);
    started.push(hb);
    return hb;
  };

  beforeEach(async () => {
    coordinator = await startCoordinator({ host: 'host-a' });
  });
  afterEach(async () => {
    for (const w of workload.splice(0)) killGroup(w);
    // SIGTERM, not SIGKILL: a command frozen by cgroup v1 cannot die until thawed, which a killed
    // headroomctl would leave to the next one started on this machine.
    for (const hb of started.splice(0)) hb.process.kill('SIGTERM');
    await killAll();
    await coordinator.kill();
  });

  /** Sets a host's policy; fails the test if the coordinator refuses it. */
  async function policy(host: string, ...options: string[]) {
    const r = await ctl('policy', 'set', '--host', host, ...options);
    assert.equal(r.code, 0, r.stderr);
  }

  it('holds a CPU-bound command to --cpu-limit, far under the same command run unlimited, and names the mechanism', async () => {
    // Load control off: this measures the budget alone, whatever else runs on this machine. The host's
    // hypervisor budget comes with the token; --cpu-limit tightens it.
    await policy('host-a', '--throttle-above-cpu', '0', '--pause-above-cpu', '0', '--hypervisor-budget-cpu', '40');
    const dir = tempDir();
    const [limitedPid, freePid] = [path.join(dir, 'limited'), path.join(dir, 'free')];
    const limited = hostBackup([
      '--json',
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-1',
      '--cpu-limit',
      '25',
      '--',
      ...burner(limitedPid, 8),
    ]);
    // The same command run at the same time without headroomctl, in a group of its own: unthrottled.
    const [file, ...args] = burner(freePid, 8);
    workload.push(spawn(file, args, { stdio: 'ignore', detached: true }));
    const [a, b] = await Promise.all([
      waitFor('the limited command to start', () => readPid(limitedPid), 20_000),
      waitFor('the unlimited command to start', () => readPid(freePid), 20_000),
    ]);
    boost(a);
    boost(b);
    await sleep(1_500); // every loop started; the signals mechanism's duty cycle has measured the group
    const [held, unheld] = await Promise.all([cpuPercentOver(a, 3_000), cpuPercentOver(b, 3_000)]);
    console.log(
      `      host-backup --cpu-limit 25: ${held.toFixed(1)} % of a core; the same command unthrottled: ${unheld.toFixed(1)} %`,
    );

    // 25 % with room for what the duty cycle of signals overshoots while it measures (cgroups are exact).
    assert.ok(held <= 35, `held to ${held.toFixed(1)} % of a core (budget 25 %)`);
    assert.ok(unheld > 2 * held, `unlimited ${unheld.toFixed(1)} % against ${held.toFixed(1)} % limited`);
    await cpuUsed(a, 0.2); // the limited command still runs

    const budget = jsonLines(limited.stderr()).find((e) => e.event === 'budget');
    assert.ok(budget, `a budget event in:\n${limited.stderr()}`);
    assert.deepEqual(budget.budget, { cpuPercent: 25, ioBytesPerSec: 0 });
    assert.deepEqual(
      budget.tokenBudget,
      { cpuPercent: 40, ioBytesPerSec: 0 },
      "the token carries the host's hypervisor budget",
    );
    assert.ok(['CGROUP_V2', 'CGROUP_V1', 'SIGNALS'].includes(budget.enforcement), budget.enforcement);
    const better = { CGROUP_V2: [], CGROUP_V1: ['cgroup v2'], SIGNALS: ['cgroup v2', 'cgroup v1'] }[
      budget.enforcement as 'CGROUP_V1'
    ];
    for (const name of better)
      assert.ok(budget.detail.includes(`${name}: `), `"${budget.detail}" says why not ${name}`);
    console.log(`      mechanism: ${budget.enforcement} (${budget.detail})`);
    const controlling = jsonLines(limited.stderr()).find((e) => e.event === 'controlling');
    assert.equal(controlling?.policy?.pauseAboveCpuPercent, 0, 'the host policy was read');

    limited.process.kill('SIGTERM');
    const la = await limited.done;
    assert.equal(la.code, 143, la.stderr);
    assert.equal(jsonLines(la.stderr).find((e) => e.event === 'finished')?.status, 'cancelled');
  });

  it('pauses the command while disk writers load the host past the pause threshold, and resumes it when they stop', async () => {
    // Thresholds of the host's foreground disk I/O, reads plus writes (the command's own taken out); CPU
    // thresholds off. The writers write with O_DIRECT as fast as the disk takes them, far above the pause
    // threshold. Other sessions' writes may cause changes of their own: only what follows our steps counts.
    await policy(
      'host-a',
      '--report-interval',
      '1s',
      '--throttle-above-cpu',
      '0',
      '--pause-above-cpu',
      '0',
      '--resume-below-io',
      '16MiB',
      '--throttle-above-io',
      '32MiB',
      '--pause-above-io',
      '48MiB',
      '--budget-dwell',
      '2s',
    );
    const dir = tempDir();
    const pidFile = path.join(dir, 'pid');
    const hb = hostBackup([
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-1',
      '--cpu-limit',
      '25',
      '--',
      ...burner(pidFile),
    ]);
    const pgid = await waitFor('the command to start', () => readPid(pidFile), 20_000);
    await hb.waitFor(
      'stderr',
      /controlling the command's budget from the load of host-a every 1s: foreground disk I\/O: throttle from 32\.0 MiB\/s, pause from 48\.0 MiB\/s, full again below 16\.0 MiB\/s/,
      20_000,
    );
    await sleep(1_500);
    const before = await cpuPercentOver(pgid, 2_000);

    for (let i = 0; i < 2; i++) {
      const writer = `while :; do dd if=/dev/zero of=${path.join(dir, `load-${i}`)} bs=1M count=32 oflag=direct status=none; done`;
      workload.push(spawn('sh', ['-c', writer], { stdio: 'ignore', detached: true }));
    }
    // Paused by our writers, or still paused by another session's I/O from before they started: either
    // way the command must now be paused, and stay so while they write.
    await waitFor('the command paused by the disk load', () => lastBudgetState(hb.stderr()) === 'paused', 60_000);
    await sleep(500);
    const paused = await cpuPercentOver(pgid, 2_000);

    const calmFrom = hb.stderr().length;
    for (const w of workload.splice(0)) killGroup(w);
    await hb.waitFor(
      'stderr',
      after(calmFrom, /\d\d:\d\d:\d\d host calmer for \d+s: foreground io [\d.]+ MiB\/s: now (?!paused)/),
      90_000,
    );
    console.log(
      `      before the load: ${before.toFixed(1)} % of a core; paused: ${paused.toFixed(2)} % (budget 25 %)`,
    );
    assert.ok(paused < 1, `a paused command accrues no CPU: ${paused.toFixed(2)} % (${before.toFixed(1)} % before)`);
    await cpuUsed(pgid, 0.2); // the resumed command runs again
    assert.match(
      hb.stderr(),
      /budget: cpu 25% of a core \(the token's: no limits, capped by --cpu-limit 25\), enforced with (CGROUP_V2|CGROUP_V1|SIGNALS)/,
    );

    hb.process.kill('SIGTERM');
    const r = await hb.done;
    assert.equal(r.code, 143, r.stderr);
  });

  it("holds the command to its budget as the host identity, which reads its own host's policy", async () => {
    // pki init makes a host identity, which takes HYPERVISOR tokens and reads its own host's policy.
    await coordinator.kill();
    const pkiDir = path.join(tempDir(), 'pki');
    const init = await runCtl(['pki', 'init', '--dir', pkiDir, '--host', 'host-a', '--names', 'localhost,127.0.0.1']);
    assert.equal(init.code, 0, init.stderr);
    coordinator = await startCoordinator({ args: ['--pki-dir', pkiDir] });
    const tls = [
      '--tls-ca',
      path.join(pkiDir, 'ca.pem'),
      '--tls-cert',
      path.join(pkiDir, 'host.pem'),
      '--tls-key',
      path.join(pkiDir, 'host.key'),
    ];
    const pidFile = path.join(tempDir(), 'pid');
    const hb = spawnCtl([
      '--coordinator',
      coordinator.address.replace('127.0.0.1', 'localhost'),
      ...tls,
      'host-backup',
      '--host',
      'host-a',
      '--vm',
      'vm-1',
      '--cpu-limit',
      '25',
      '--',
      ...burner(pidFile),
    ]);
    started.push(hb);
    const pgid = await waitFor('the command to start', () => readPid(pidFile), 20_000);
    await hb.waitFor('stderr', /controlling the command's budget from the load of host-a every /, 20_000);
    await sleep(1_000);
    const held = await cpuPercentOver(pgid, 2_000);
    console.log(`      as the host identity: ${held.toFixed(1)} % of a core (budget 25 %)`);
    assert.ok(held <= 35, `held to ${held.toFixed(1)} % of a core (budget 25 %)`);
    assert.match(
      hb.stderr(),
      /budget: cpu 25% of a core \(the token's: no limits, capped by --cpu-limit 25\), enforced with/,
    );
    assert.doesNotMatch(hb.stderr(), /could not read the policy/);

    hb.process.kill('SIGTERM');
    assert.equal((await hb.done).code, 143);
  });
});

/** The budget state host-backup's load controller last moved to ("paused", "throttled", "full"), if any. */
function lastBudgetState(stderr: string): string | undefined {
  return [...stderr.matchAll(/\d\d:\d\d:\d\d host (?:busy|calmer)[^\n]*?: now (\w+)/g)].at(-1)?.[1];
}
