/**
 * Issue 15's scheduling bugs, with a real coordinator and real agents on an idle host: a hand-run of a
 * declared job (`exec --job`) is never held for a planned slot past its own window, and says a denial once;
 * a scheduled job's first run starts at its cron time, not at a slot spaced from the moment its agent said
 * hello.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Clients } from '../../../common/client/connection';
import { unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import {
  type RunningCoordinator,
  startCoordinator,
  tempDir,
  WAIT_SIGNALS_OFF,
} from '../../helpers/coordinator-process';
import { acquire, connectPlain, release } from '../../helpers/token-client';
import { type AgentProcess, startAgent, waitFor, writeConfig } from './processes';

const HOST = 'host-a';
const SECOND = 1_000;

/** A coordinator whose loads hold nothing back, with a minimum gap between planned starts of `gap`. */
async function idleCoordinator(gap: string): Promise<RunningCoordinator> {
  const config = path.join(tempDir(), 'coordinator.yaml');
  fs.writeFileSync(
    config,
    `policy:\n  startBelowCpuPercent: 0\n  hostStartBelowCpuPercent: 0\n  minStartGap: ${gap}\n${WAIT_SIGNALS_OFF}`,
  );
  return startCoordinator({ host: HOST, args: ['--config', config] });
}

function agentConfig(address: string, vm: string, job: { schedule: string; window: string; command: string[] }) {
  return writeConfig(
    [
      `coordinator: ${address}`,
      `host: ${HOST}`,
      `vm: ${vm}`,
      'jobs:',
      '  - name: tar-data',
      `    schedule: "${job.schedule}"`,
      `    window: ${job.window}`,
      '    expectedDuration: 1s',
      `    command: ${JSON.stringify(job.command)}`,
    ].join('\n'),
  );
}

async function grants(clients: Clients, vm: string): Promise<v1.HistoryEvent__Output[]> {
  const { events } = await unary(clients.admin.ListHistory.bind(clients.admin), { host: HOST, vm, limit: 1000 });
  return events.filter((e) => e.type === 'HISTORY_EVENT_TYPE_GRANTED');
}

describe('scheduling with real agents on an idle host', function () {
  this.timeout(90_000);
  let coordinator: RunningCoordinator | undefined;
  let clients: Clients | undefined;
  const agents: AgentProcess[] = [];

  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
    clients?.close();
    await coordinator?.stop();
    coordinator = undefined;
  });

  const agent = (args: string[]) => {
    const a = startAgent(args);
    agents.push(a);
    return a;
  };

  it("exec of a declared job starts now rather than at the next occurrence's slot past its window, and says a denial once", async () => {
    coordinator = await idleCoordinator('0s');
    clients = connectPlain(coordinator.address);
    // The declared job's next occurrence is a minute and a half away: within the 5 minutes by which a
    // request's window is matched to a planned run's, but far past the end of a hand-run's 10 s window.
    const next = new Date(Date.now() + 90 * SECOND);
    const schedule = `${next.getSeconds()} ${next.getMinutes()} ${next.getHours()} * * *`;
    const marker = path.join(tempDir(), 'ran');
    const config = agentConfig(coordinator.address, 'vm-exec', {
      schedule,
      window: '10s',
      command: ['sh', '-c', `echo ran >> ${marker}`],
    });
    agent(['run', '--config', config]);
    await waitFor(
      "the occurrence in the host's plan",
      async () => {
        const plan = await unary(clients!.admin.GetPlan.bind(clients!.admin), { host: HOST, horizonMs: 3_600_000 });
        return plan.slots.some((s) => s.vm === 'vm-exec' && s.job === 'tar-data');
      },
      15_000,
    );
    // The keeper hands the plan to the lessor a moment after the hello; GetPlan answers from the same input.
    await new Promise((r) => setTimeout(r, 1_500));

    const handRun = agent(['exec', '--config', config, '--job', 'tar-data']);
    assert.equal(await handRun.exited, 0, handRun.stderr());
    assert.doesNotMatch(handRun.stderr(), /planned slot/);
    assert.match(
      handRun.stderr(),
      /^headroom-agent: granted token \S+ \(fencing \d+\) on host-a at .*; running sh -c 'echo ran >> /m,
    );
    assert.equal(fs.readFileSync(marker, 'utf8'), 'ran\n');

    // A denial: the VM held by another backup past the hand-run's window.
    const holder = await acquire(clients, { host: HOST, vm: 'vm-exec', job: 'other' }).done;
    assert.ok(holder.granted);
    const denied = agent(['exec', '--config', config, '--job', 'tar-data', '--window', '2s']);
    assert.equal(await denied.exited, 75, denied.stderr());
    const said = denied.stderr().match(/^headroom-agent: .*denied.*$/gm) ?? [];
    assert.equal(said.length, 1, `the denial, said once:\n${denied.stderr()}`);
    assert.match(
      said[0],
      /^headroom-agent: denied a GUEST token for tar-data \(WINDOW_CLOSED\): its window closed at \S+ before it could start$/,
    );
    await release(clients, holder.granted);
  });

  it('starts the first run of a job at its cron time, not a start gap after its agent said hello', async () => {
    const period = 20 * SECOND;
    // The gap equals the period, as a minute's gap does for an every-minute job.
    coordinator = await idleCoordinator('20s');
    clients = connectPlain(coordinator.address);
    // The agent says hello halfway through a period, while the occurrence before it is still in its window:
    // the plan made after the hello placed that occurrence (which the agent never asks for) at the hello,
    // and every later run a gap after it, half a period late.
    while (Date.now() % period < period / 2 || Date.now() % period > period / 2 + SECOND)
      await new Promise((r) => setTimeout(r, 20));
    const config = agentConfig(coordinator.address, 'vm-cron', {
      schedule: '*/20 * * * * *',
      window: '20s',
      command: ['true'],
    });
    agent(['run', '--config', config]);
    const [first] = await waitFor(
      'the first run granted',
      async () => {
        const list = await grants(clients!, 'vm-cron');
        return list.length > 0 && list;
      },
      2 * period + 15_000,
    );
    const grantedAt = Number(first.atUnixMs);
    const occurrence = grantedAt - (grantedAt % period);
    // The request goes out at the cron time; on an idle host it is granted as soon as it arrives. A busy
    // machine may delay that by seconds, but the late slot would have held it at least half a period.
    assert.ok(
      grantedAt - occurrence < (period * 2) / 5,
      `granted ${grantedAt - occurrence} ms after its cron time ${new Date(occurrence).toISOString()}`,
    );
  });
});
