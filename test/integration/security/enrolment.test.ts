/**
 * Enrolment end to end with the real executables: `headroomctl pki init`, a coordinator serving its CA,
 * `headroomctl enroll create`, `headroom-agent enroll`, and `headroom-agent run` holding its session over
 * mutual TLS with the certificate it got. A used or expired token is refused; a rotation closes the old
 * certificate out.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../../common/client/connection';
import { AGENT_MAIN, type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { type AgentProcess, startAgent } from '../agent/processes';
import { killAll, runCtl, spawnCtl } from '../ctl/ctl-process';
import { adminPem, hostBackupArgv, hostFlags } from './pki-fixture';

/** Runs `headroom-agent ARGS` to completion (for enroll). */
function runAgent(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [AGENT_MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HEADROOM_LOG: 'info' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

describe('enrolment end to end (real headroomctl, coordinator and agent processes)', function () {
  this.timeout(90_000);
  let dir: string;
  let pkiDir: string;
  let coordinator: RunningCoordinator;
  let address: string;
  let admin: Clients;
  let agent: AgentProcess | undefined;

  const ctl = (...args: string[]) => runCtl(['--coordinator', address, '--pki-dir', pkiDir, ...args]);
  const createToken = async (...args: string[]) => {
    const r = await ctl('enroll', 'create', '--host', 'host-a', '--vm', 'vm1', ...args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /one-time token for the agent of vm1 on host-a/);
    return r.stdout.trim();
  };
  const vm1 = async () =>
    (await unary(admin.admin.ListAgents.bind(admin.admin), {})).agents.find((a) => a.vm === 'vm1');

  before(async () => {
    dir = tempDir('headroom-enrol-');
    pkiDir = path.join(dir, 'pki');
    const init = await runCtl(['pki', 'init', '--dir', pkiDir, '--host', 'host-a', '--names', 'localhost,127.0.0.1']);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /^CA created in .*, fingerprint sha256 [0-9a-f]{64}\n/);
    for (const key of ['ca.key', 'server.key', 'admin.key', 'host.key']) {
      assert.equal(fs.statSync(path.join(pkiDir, key)).mode & 0o777, 0o600, key);
    }
    coordinator = await startCoordinator({ args: ['--pki-dir', pkiDir] });
    address = coordinator.address.replace('127.0.0.1', 'localhost');
    const pem = adminPem(pkiDir);
    admin = connect(
      address,
      grpc.credentials.createSsl(
        fs.readFileSync(pem.caFile),
        fs.readFileSync(pem.keyFile!),
        fs.readFileSync(pem.certFile!),
      ),
    );
  });

  after(async () => {
    await agent?.stop();
    await killAll();
    admin?.close();
    await coordinator?.kill();
  });

  it('enrols an agent with a one-time token, and its session then runs over mutual TLS', async () => {
    const token = await createToken();
    const agentDir = path.join(dir, 'agent');
    const r = await runAgent(['enroll', '--token', token, '--coordinator', address, '--dir', agentDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^enrolled as the agent of VM vm1 on host host-a, certificate valid until /);
    assert.equal(fs.statSync(path.join(agentDir, 'agent-key.pem')).mode & 0o777, 0o600);
    assert.ok(
      !r.stderr.includes('PRIVATE KEY') && !r.stdout.includes(token.split('.')[2]),
      'neither the key nor the secret is printed',
    );

    const config = path.join(dir, 'agent.yaml');
    // The lines `enroll` printed for agent.yaml, as they are.
    fs.writeFileSync(config, r.stdout.slice(r.stdout.indexOf('in agent.yaml:\n') + 'in agent.yaml:\n'.length));
    agent = startAgent(['run', '--config', config]);
    await waitFor(async () => (await vm1())?.connected === true, 15_000, 'the agent of vm1 to hold its session');
    assert.ok(!agent.stderr().includes('without TLS'), agent.stderr());
    assert.match(coordinator.log(), /INFO +enrolled identity="agent vm1@host-a" serial=[0-9a-f]+ tokenId=[0-9a-f]{16}/);
  });

  it('runs host-backup as the host identity pki init made, which may not make admin calls', async () => {
    const host = ['--coordinator', address, ...hostFlags(pkiDir)];
    const r = await runCtl([...host, ...hostBackupArgv('true')]);
    assert.equal(r.code, 0, r.stderr);
    // The host role takes no admin calls.
    const status = await runCtl([...host, 'status']);
    assert.equal(status.code, 1);
    assert.match(
      status.stderr,
      /PERMISSION_DENIED: AdminService\.ListHosts needs the admin role; the caller is host host-a/,
    );
  });

  it("hears of a revoke of host-backup's token from its own host's history, with the host identity", async () => {
    const host = ['--coordinator', address, ...hostFlags(pkiDir)];
    const run = spawnCtl([...host, ...hostBackupArgv('sleep', '120')], { HEADROOM_LOG: 'debug' });
    const held = () =>
      unary(admin.admin.ListTokens.bind(admin.admin), { host: 'host-a' }).then((r) =>
        r.active.find((t) => t.kind === 'TOKEN_KIND_HYPERVISOR'),
      );
    await waitFor(async () => (await held()) !== undefined, 15_000, "host-backup's HYPERVISOR token");
    // Its watch is open once the history call went through (refused, it would fall back to renewals).
    await waitFor(async () => /watching the history for a revoke/.test(run.stderr()), 15_000, 'the revoke watch');
    const token = (await held())!;
    await unary(admin.admin.RevokeToken.bind(admin.admin), { tokenId: token.tokenId, reason: 'disk swap on host-a' });
    const r = await run.done;
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /disk swap on host-a/);
    assert.doesNotMatch(coordinator.log(), /call refused method=AdminService\.(ListHistory|WatchHistory)/);
  });

  it('refuses a token the second time', async () => {
    const token = await createToken();
    assert.equal(
      (await runAgent(['enroll', '--token', token, '--coordinator', address, '--dir', path.join(dir, 'once')])).code,
      0,
    );
    const again = await runAgent([
      'enroll',
      '--token',
      token,
      '--coordinator',
      address,
      '--dir',
      path.join(dir, 'twice'),
    ]);
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /headroom-agent: the coordinator refused to enrol this agent: PERMISSION_DENIED: enrolment token refused: it was already used/,
    );
    assert.ok(!fs.existsSync(path.join(dir, 'twice', 'agent.pem')));
  });

  it('refuses an expired token', async () => {
    const token = await createToken('--ttl', '1s');
    const expires = Date.now() + 1_000;
    await new Promise((r) => setTimeout(r, Math.max(0, expires - Date.now()) + 200));
    const r = await runAgent(['enroll', '--token', token, '--coordinator', address, '--dir', path.join(dir, 'late')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /PERMISSION_DENIED: enrolment token refused: it was already expired/);
  });

  it('refuses to enrol with a coordinator whose CA is not the one the token pins', async () => {
    const token = await createToken();
    const forged = token.replace(/\.[0-9a-f]{64}$/, `.${'0'.repeat(64)}`);
    const r = await runAgent([
      'enroll',
      '--token',
      forged,
      '--coordinator',
      address,
      '--dir',
      path.join(dir, 'forged'),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /did not present the CA this token pins \(sha256 0{64}\): not enrolling/);
  });

  it('rotates: the agent enrols again with a new key, and its old certificate is refused from then on', async () => {
    const before = await ctl('pki', 'list', '--json');
    const old = (JSON.parse(before.stdout).certificates as { serial: string; identity: { vm: string } }[]).filter(
      (c) => c.identity.vm === 'vm1',
    );
    assert.ok(old.length >= 1);
    const rotate = await ctl('pki', 'rotate', '--host', 'host-a', '--vm', 'vm1');
    assert.equal(rotate.code, 0, rotate.stderr);
    const r = await runAgent([
      'enroll',
      '--token',
      rotate.stdout.trim(),
      '--coordinator',
      address,
      '--dir',
      path.join(dir, 'rotated'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    // The running agent still holds the old certificate: its session is closed and stays refused.
    await waitFor(async () => (await vm1())?.connected === false, 15_000, "the old certificate's session to be closed");
    await waitFor(
      () =>
        /WARN +call refused method=AgentService\.Session code=UNAUTHENTICATED reason="certificate [0-9a-f]+ was revoked"/.test(
          coordinator.log(),
        ),
      15_000,
      'the refusal of the old certificate in the log',
    );
    const list = await ctl('pki', 'list', '--all');
    assert.equal(list.code, 0, list.stderr);
    for (const c of old)
      assert.match(
        list.stdout,
        new RegExp(`${c.serial} +agent +vm1@host-a .*revoked \\(rotated: replaced by [0-9a-f]+\\)`),
      );

    const revoke = await ctl('pki', 'revoke', '--host', 'host-a', '--vm', 'vm1', '--reason', 'decommissioned');
    assert.equal(revoke.code, 0, revoke.stderr);
    assert.match(revoke.stdout, /^revoked [0-9a-f]+ \(agent vm1@host-a\)\n$/);
    const none = await ctl('pki', 'revoke', '--host', 'host-a', '--vm', 'vm1');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /NOT_FOUND: no certificate active for agent vm1@host-a/);
  });
});
