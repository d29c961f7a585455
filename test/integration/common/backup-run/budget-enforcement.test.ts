/**
 * The enforcement mechanisms on real processes, as the agent's jobs use them (spawnChild, then RunBudget
 * as the guarded run's control): a CPU-burning command held to 20 % of a core, paused and resumed, and
 * stopped while paused. Signals are tested everywhere; cgroup v1 and v2 wherever this machine lets the
 * agent make groups, and detection is checked to have said why when it does not.
 */
import { strict as assert } from 'node:assert';
import { detectEnforcement } from '../../../../common/backup-run/budget/detect';
import type { EnforcementMechanism, EnforcementMode } from '../../../../common/backup-run/budget/enforcer';
import { EnforcementUnavailableError } from '../../../../common/backup-run/budget/enforcer';
import { groupMembers } from '../../../../common/backup-run/budget/process-usage';
import { RunBudget } from '../../../../common/backup-run/budget/run-budget';
import { enforcement } from '../../../../proto/enums';
import { processGroupAlive, RunningChild, spawnChild } from '../../../../common/backup-run/child-process';
import { createLogger } from '../../../../common/util/log';
import { token } from '../../../unit/common/backup-run/guarded-run-fakes';
import {
  cgroupDirsNamed,
  cpuPercentAbove,
  cpuPercentOver,
  cpuUsed,
  processGone,
  stoppedMembers,
} from '../../../helpers/budget-measure';
import { waitFor } from '../../agent/processes';

const log = createLogger({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two busy loops: the shell's own, and a grandchild's in the background. */
const BURNER = ['sh', '-c', 'sh -c "while :; do :; done" & while :; do :; done'];

/** The mechanisms this machine offers: signals always, cgroups where groups can be made. */
function available(): { mode: EnforcementMode; mechanism: EnforcementMechanism }[] {
  const found: { mode: EnforcementMode; mechanism: EnforcementMechanism }[] = [];
  for (const mode of ['cgroup-v2', 'cgroup-v1', 'signals'] as const) {
    try {
      found.push({ mode, mechanism: detectEnforcement({ mode, log }) });
    } catch (err) {
      if (!(err instanceof EnforcementUnavailableError)) throw err;
    }
  }
  return found;
}

describe('budget enforcement on real processes', function () {
  this.timeout(90_000);
  const children: RunningChild[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      c.signalGroup('SIGCONT');
      await c.stop(0);
    }
  });

  it('detection names the reason for every better mechanism it did not use', () => {
    const auto = detectEnforcement({ mode: 'auto', log });
    const better = { CGROUP_V2: [], CGROUP_V1: ['cgroup v2'], SIGNALS: ['cgroup v2', 'cgroup v1'] }[auto.enforcement];
    for (const name of better)
      assert.ok(auto.detail.includes(`${name}: `), `${auto.enforcement}: "${auto.detail}" says nothing about ${name}`);
    assert.ok(available().some((a) => a.mechanism.enforcement === auto.enforcement));
  });

  for (const { mode, mechanism } of available()) {
    describe(`${mode}`, () => {
      function start(budget: { cpuPercent: number; ioBytesPerSec: number }) {
        const child = spawnChild(BURNER, { stdio: 'ignore', killGraceMs: 10_000 });
        children.push(child);
        const control = new RunBudget({ mechanism, log });
        control.started(child, token({ budget }));
        return { child, control, pgid: child.pid! };
      }

      it('holds two busy loops to about 20 % of one core, well under what they take unthrottled', async () => {
        const { pgid, control } = start({ cpuPercent: 20, ioBytesPerSec: 0 });
        await waitFor('both loops', () => groupMembers(pgid, undefined).length >= 2);
        await sleep(1_000); // the duty cycle measures how many cores the group keeps busy
        const throttled = await cpuPercentOver(pgid, 2_000);
        assert.ok(control.current()?.enforcement === enforcement.toWire(mechanism.enforcement));
        // 20 % with room for what the duty cycle of signals overshoots while it measures (cgroups are exact).
        assert.ok(throttled <= 32, `throttled to ${throttled.toFixed(1)} % of a core (budget 20 %)`);
        await cpuUsed(pgid, 0.2); // still running
        await control.set({ budget: { cpuPercent: 0, ioBytesPerSec: 0 }, paused: false });
        await cpuPercentAbove(pgid, 32); // more than the budget ever let through
      });

      it('accrues no CPU while paused, and continues after resume', async () => {
        const { pgid, control } = start({ cpuPercent: 0, ioBytesPerSec: 0 });
        await waitFor('both loops', () => groupMembers(pgid, undefined).length >= 2);
        assert.equal((await control.set({ budget: { cpuPercent: 0, ioBytesPerSec: 0 }, paused: true })).ok, true);
        await sleep(200);
        const paused = await cpuPercentOver(pgid, 1_500);
        assert.equal((await control.set({ budget: { cpuPercent: 0, ioBytesPerSec: 0 }, paused: false })).ok, true);
        assert.ok(paused < 2, `paused: ${paused.toFixed(1)} % of a core`);
        await cpuUsed(pgid, 0.3); // resumed: it runs again
      });

      it('stops a paused command with SIGTERM, long before the kill grace, leaving nothing stopped or behind', async () => {
        const { child, pgid, control } = start({ cpuPercent: 30, ioBytesPerSec: 0 });
        await waitFor('both loops', () => groupMembers(pgid, undefined).length >= 2);
        await control.set({ budget: { cpuPercent: 30, ioBytesPerSec: 0 }, paused: true });
        const members = groupMembers(pgid, child.watchdogPid);
        // As the guarded run does: SIGTERM to the group, then let it go.
        const stopped = child.stop(10_000);
        control.stopping();
        const exit = await stopped;
        assert.equal(exit.signal, 'SIGTERM', 'stopped by the SIGTERM, not by the SIGKILL that ends the grace');
        assert.equal(processGroupAlive(pgid), false);
        assert.deepEqual(stoppedMembers(pgid), []);
        assert.ok(members.every(processGone));
        await control.ended();
        assert.deepEqual(cgroupDirsNamed(`headroom-${process.pid}-${pgid}`), [], 'no cgroup left');
      });
    });
  }
});
