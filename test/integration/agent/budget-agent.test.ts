/**
 * Budgets through the real headroom-agent daemon and exec, against the scripted coordinator: the token's
 * budget holds the job from its start and is reported with the mechanism in force; BudgetCommands pause
 * and resume it and are acknowledged and reported; load reports carry the backup's share; a paused job
 * is stopped promptly when its token is revoked.
 */
import { strict as assert } from 'node:assert';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { v1 } from '../../../proto';
import { enforcement as enforcements } from '../../../proto/enums';
import { detectEnforcement } from '../../../common/backup-run/budget/detect';
import { createLogger } from '../../../common/util/log';
import { tempDir } from '../../helpers/coordinator-process';
import { cpuPercentAbove, cpuPercentOver, cpuUsed, processGone, stoppedMembers } from '../../helpers/budget-measure';
import { FakeCoordinator } from './fake-coordinator';
import { AgentProcess, EVERY_OTHER_SECOND, pidAlive, startAgent, waitFor, writeConfig } from './processes';

type AcquireCall = grpc.ServerWritableStream<v1.AcquireRequest__Output, v1.AcquireUpdate>;

/** A busy loop that writes its pid (the group's id) to `pidFile` first. */
const burner = (pidFile: string) => ['sh', '-c', `echo $$ > ${pidFile}; while :; do :; done`];

describe('budgets through the headroom-agent daemon and exec', function () {
  this.timeout(90_000);
  let fake: FakeCoordinator;
  const agents: AgentProcess[] = [];
  const groups: number[] = [];
  /** The BudgetReports the agents sent, in order. */
  let reports: v1.BudgetReport__Output[];

  beforeEach(async () => {
    fake = await new FakeCoordinator().start();
    reports = [];
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    for (const pgid of groups.splice(0)) {
      try {
        process.kill(-pgid, 'SIGCONT');
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    await fake.stop();
  });

  /** Grants every request at once with `budget`; returns the tokens granted. */
  function grantWith(budget: v1.Budget__Output): v1.Token__Output[] {
    const tokens: v1.Token__Output[] = [];
    fake.onAcquire = (request, call: AcquireCall) => {
      const now = Date.now();
      const t: v1.Token__Output = {
        tokenId: randomUUID(),
        fencing: tokens.length + 1,
        target: '',
        kind: request.kind,
        host: 'host-fake',
        vm: request.vm,
        job: request.job,
        requestId: request.requestId,
        slot: { startUnixMs: now, expectedEndUnixMs: now + 60_000, windowEndUnixMs: 0 },
        grantedUnixMs: now,
        expiresUnixMs: now + fake.ttlMs,
        ttlMs: fake.ttlMs,
        priority: request.priority,
        budget,
      };
      tokens.push(t);
      call.write({ granted: t });
      call.end();
    };
    return tokens;
  }

  /** Starts a daemon with one burning job ~2 s from now and records its BudgetReports. */
  async function daemon(enforcement: string): Promise<{ agent: AgentProcess; pidFile: string }> {
    const pidFile = path.join(tempDir(), 'pid');
    const config = writeConfig(
      [
        `coordinator: ${fake.address}`,
        'vm: vm-budget',
        'killGrace: 20s',
        `budget: {enforcement: ${enforcement}}`,
        'jobs:',
        `  - {name: burn, schedule: "${EVERY_OTHER_SECOND}", window: 1m, expectedDuration: 1m, command: ${JSON.stringify(burner(pidFile))}}`,
      ].join('\n'),
    );
    const agent = startAgent(['run', '--config', config]);
    agents.push(agent);
    await waitFor('the session', () => fake.sessions.length > 0);
    fake.sessions[0].on('data', (m: v1.AgentMessage__Output) => m.budget && reports.push(m.budget));
    return { agent, pidFile };
  }

  async function jobPid(pidFile: string): Promise<number> {
    const pid = await waitFor(
      'the job to start',
      () => Number(fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim()) || undefined,
      15_000,
    );
    groups.push(pid);
    return pid;
  }

  async function command(tokenId: string, budget: v1.Budget, paused: boolean): Promise<v1.CommandAck__Output> {
    const commandId = randomUUID();
    fake.command({ commandId, budget: { tokenId, budget, paused, reason: 'the test says so' } });
    return waitFor('the ack', () => fake.acks.find((a) => a.commandId === commandId));
  }

  const expected = detectEnforcement({ mode: 'auto', log: createLogger({ level: 'silent' }) }).enforcement;

  for (const enforcement of ['auto', 'signals']) {
    it(`holds a job to its token's budget, pauses and resumes it on command, reporting each (${enforcement})`, async () => {
      const tokens = grantWith({ cpuPercent: 20, ioBytesPerSec: 0 });
      const { pidFile } = await daemon(enforcement);
      const pgid = await jobPid(pidFile);
      const t = tokens[0];
      const first = await waitFor('the first budget report', () => reports[0]);
      const mechanism = enforcement === 'signals' ? 'SIGNALS' : expected;
      assert.deepEqual(
        { tokenId: first.tokenId, budget: first.budget, paused: first.paused, enforcement: first.enforcement },
        {
          tokenId: t.tokenId,
          budget: { cpuPercent: 20, ioBytesPerSec: 0 },
          paused: false,
          enforcement: enforcements.toWire(mechanism),
        },
      );
      assert.ok(first.detail.length > 0);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const throttled = await cpuPercentOver(pgid, 2_000);
      assert.ok(throttled <= 32, `throttled to ${throttled.toFixed(1)} % of a core`);
      await cpuUsed(pgid, 0.2); // still running

      const paused = await command(t.tokenId, { cpuPercent: 20, ioBytesPerSec: 0 }, true);
      assert.equal(paused.ok, true, paused.message);
      assert.match(paused.message, new RegExp(`^paused .*\\(${mechanism}\\)$`));
      await waitFor('the paused report', () => reports.find((r) => r.paused));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const whilePaused = await cpuPercentOver(pgid, 1_500);
      assert.ok(whilePaused < 2, `paused: ${whilePaused.toFixed(1)} %`);

      const resumed = await command(t.tokenId, { cpuPercent: 0, ioBytesPerSec: 0 }, false);
      assert.deepEqual(resumed, { commandId: resumed.commandId, ok: true, message: `no limits (${mechanism})` });
      await cpuPercentAbove(pgid, 32); // resumed without limits: more than the budget of 20 % lets through
      assert.deepEqual(
        reports.map((r) => [r.budget?.cpuPercent, r.paused]),
        [
          [20, false],
          [20, true],
          [0, false],
        ],
      );
      await waitFor(
        'a load report with the backup in it',
        () => fake.loads.find((l) => l.backupCpuPercent > 10),
        30_000,
      );
    });
  }

  it('stops a paused job at once when its token is revoked, though its kill grace is long', async () => {
    const tokens = grantWith({ cpuPercent: 0, ioBytesPerSec: 0 });
    const { agent, pidFile } = await daemon('auto');
    const pgid = await jobPid(pidFile);
    const t = tokens[0];
    assert.equal((await command(t.tokenId, { cpuPercent: 0, ioBytesPerSec: 0 }, true)).ok, true);
    fake.revoke(t, 'the window closed');
    // Well within the kill grace of 20 s, after which a SIGKILL would end it anyway.
    await waitFor('the paused job to die of SIGTERM', () => processGone(pgid), 15_000);
    assert.deepEqual(stoppedMembers(pgid), []);
    await waitFor('the job to be reported revoked', () => /WARN  job revoked job=burn/.test(agent.stderr()));
  });

  it("exec holds its command to the token's budget, and says so", async () => {
    grantWith({ cpuPercent: 20, ioBytesPerSec: 0 });
    const pidFile = path.join(tempDir(), 'pid');
    const exec = startAgent([
      'exec',
      '--coordinator',
      fake.address,
      '--vm',
      'vm-exec',
      '--job',
      'burn',
      '--',
      ...burner(pidFile),
    ]);
    agents.push(exec);
    const pgid = await jobPid(pidFile);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const throttled = await cpuPercentOver(pgid, 2_000);
    assert.ok(throttled <= 32, `throttled to ${throttled.toFixed(1)} % of a core`);
    await cpuUsed(pgid, 0.2); // still running
    assert.match(
      exec.stderr(),
      new RegExp(`headroom-agent: the command is held to cpu 20% of a core \\(${expected}\\)`),
    );
    exec.process.kill('SIGTERM');
    assert.equal(await exec.exited, 143);
    assert.ok(!pidAlive(pgid));
  });
});
