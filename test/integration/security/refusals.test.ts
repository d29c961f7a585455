/**
 * What the clients do when the coordinator's own CA refuses them, with real certificates and the real
 * executables: an agent given only tls.caFile (no client certificate) says so once with the fix, and its
 * exec exits 78 (misconfigured) rather than 75 (try later), and so does host-backup; enrolment by IP sends
 * no IP as the TLS server name; host-backup as the host identity reads its host's policy and controls its
 * command's budget.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { unary } from '../../../common/client/connection';
import { tempDir } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { EVERY_OTHER_SECOND, type AgentProcess, startAgent, writeConfig } from '../agent/processes';
import { killAll, runCtl } from '../ctl/ctl-process';
import { type PkiFixture, hostBackupArgv, hostFlags, hostPem, startPkiCoordinator } from './pki-fixture';

const FIX =
  /give a client certificate and key issued by the coordinator's CA: tls\.certFile and tls\.keyFile in agent\.yaml/;

describe('refusals that no retry cures, and the host role (real coordinator, agent and headroomctl)', function () {
  this.timeout(60_000);
  let pki: PkiFixture;
  let agent: AgentProcess | undefined;
  let caOnly: string;

  before(async () => {
    pki = await startPkiCoordinator();
    // The agent.yaml a reader of an older README wrote: the CA, no client certificate.
    caOnly = writeConfig(
      [
        `coordinator: ${pki.address}`,
        'vm: vm-ca-only',
        'host: host-a',
        `tls: { caFile: ${path.join(pki.pkiDir, 'ca.pem')} }`,
        `controlSocket: ${path.join(tempDir(), 'agent.sock')}`,
        'jobs:',
        '  - name: every-other-second',
        `    schedule: "${EVERY_OTHER_SECOND}"`,
        '    window: 1s',
        '    expectedDuration: 1s',
        '    command: ["true"]',
        '',
      ].join('\n'),
    );
  });

  after(async () => {
    await agent?.stop();
    await killAll();
    await pki?.close();
  });

  it('warns at check time that tls.caFile alone will be refused by a coordinator with its own CA', async () => {
    const check = startAgent(['check', '--config', caOnly]);
    assert.equal(await check.exited, 0, check.stderr());
    assert.match(
      check.stderr(),
      /warning: .*agent\.yaml: tls has caFile but no certFile\/keyFile: a coordinator with its own CA \(pki init\) requires a client certificate it issued and refuses this agent; run 'headroom-agent enroll --token …'/,
    );
  });

  it('logs the refusal once with its fix while its session and its every-other-second job keep being refused', async () => {
    agent = startAgent(['run', '--config', caOnly]);
    // Three occurrences of the job refused after the first (said at debug level only), then count.
    await waitFor(
      async () => (agent!.stderr().match(/job not run: still refused/g) ?? []).length >= 3,
      30_000,
      'three more occurrences refused',
    );
    const lines = agent.stderr().split('\n');
    const said = lines.filter((l) => !/DEBUG/.test(l));
    const session = said.filter((l) => /the coordinator refuses this agent, and will until a setting changes/.test(l));
    const jobs = said.filter((l) => /job not run/.test(l));
    assert.equal(session.length, 1, agent.stderr());
    assert.match(session[0], FIX);
    assert.equal(jobs.length, 1, agent.stderr());
    assert.match(jobs[0], FIX);
    assert.doesNotMatch(agent.stderr(), /cannot reach the coordinator|unreachable/);
  });

  it('exits 78 from exec (misconfigured), not 75 (try later), saying what to set', async () => {
    const exec = startAgent(['exec', '--config', caOnly, '--job', 'by-hand', '--', 'true']);
    assert.equal(await exec.exited, 78, exec.stderr());
    assert.match(
      exec.stderr(),
      /headroom-agent: cannot get a GUEST token for by-hand: a client certificate issued by this coordinator's CA is required; /,
    );
    assert.match(exec.stderr(), FIX);
  });

  it('enrols by IP address without sending it as the TLS server name: no DEP0123 warning', async () => {
    const { token } = await unary(pki.admin.pki.CreateEnrollmentToken.bind(pki.admin.pki), {
      identity: { role: 'ROLE_AGENT', host: 'host-a', vm: 'vm-by-ip' },
    });
    assert.match(pki.coordinator.address, /^127\.0\.0\.1:/);
    const enrol = startAgent(
      ['enroll', '--token', token, '--coordinator', pki.coordinator.address, '--dir', tempDir()],
      {
        env: { HEADROOM_LOG: 'info' },
      },
    );
    assert.equal(await enrol.exited, 0, enrol.stderr());
    assert.doesNotMatch(enrol.stderr(), /DEP0123|Warning/);
  });

  it('exits 78 from host-backup without a client certificate, naming the flags that give one', async () => {
    const r = await runCtl([
      '--coordinator',
      pki.address,
      '--tls-ca',
      hostPem(pki.pkiDir).caFile,
      ...hostBackupArgv('true'),
    ]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(
      r.stderr,
      /cannot get a HYPERVISOR token for vzdump: a client certificate issued by this coordinator's CA is required; give a client certificate and key issued by the coordinator's CA: --tls-cert FILE --tls-key FILE, or --pki-dir DIR for the admin identity/,
    );
  });

  it("lets host-backup as the host identity read its host's policy, so the host's load controls the command", async () => {
    const r = await runCtl(['--coordinator', pki.address, ...hostFlags(pki.pkiDir), ...hostBackupArgv('sleep', '2')]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /could not read the policy/);
    assert.match(r.stderr, /controlling the command's budget from the load of host-a every /);
  });
});
