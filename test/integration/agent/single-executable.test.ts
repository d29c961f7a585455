/**
 * The single executable (dist/bin/headroom-agent): built if missing, then run as users run it, with no
 * node_modules and no Node on the PATH it could lean on.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { v1 } from '../../../proto';
import { connect, unary } from '../../../common/client/connection';
import { RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { AGENT_SEA, AgentProcess, startAgent, waitFor } from './processes';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');

/** True when the executable is missing or older than the compiled agent it bundles. */
function staleOrMissing(): boolean {
  if (!fs.existsSync(AGENT_SEA)) return true;
  const built = fs.statSync(AGENT_SEA).mtimeMs;
  const dist = path.join(ROOT, 'dist');
  return ['agent', 'common', 'proto'].some((dir) =>
    fs
      .readdirSync(path.join(dist, dir))
      .some((f) => f.endsWith('.js') && fs.statSync(path.join(dist, dir, f)).mtimeMs > built),
  );
}

describe('the headroom-agent single executable', function () {
  this.timeout(60_000);
  let coordinator: RunningCoordinator | undefined;
  const agents: AgentProcess[] = [];
  /** A copy outside the repository, so that nothing could be loaded from node_modules or dist by accident. */
  let binary: string;

  before(function () {
    this.timeout(180_000);
    if (staleOrMissing())
      execFileSync(process.execPath, [path.join(ROOT, 'agent', 'build-sea.js')], { cwd: ROOT, stdio: 'inherit' });
    binary = path.join(tempDir('headroom-sea-'), 'headroom-agent');
    fs.copyFileSync(AGENT_SEA, binary);
    fs.chmodSync(binary, 0o755);
  });
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
  });
  after(async () => {
    await coordinator?.stop();
    if (binary) fs.rmSync(path.dirname(binary), { recursive: true, force: true });
  });

  const run = (args: string[]) => {
    const a = startAgent(args, { executable: binary, env: { PATH: '/usr/bin:/bin', NODE_PATH: '' } });
    agents.push(a);
    return a;
  };

  it('prints its version and help', async () => {
    const version = run(['version']);
    assert.equal(await version.exited, 0);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.match(version.stdout(), new RegExp(`^headroom-agent ${pkg.version.replace(/\./g, '\\.')}\n$`));
    const help = run(['exec', '--help']);
    assert.equal(await help.exited, 0);
    assert.match(help.stdout(), /Usage: headroom-agent exec --job NAME/);
  });

  it("runs exec against a real coordinator and exits with the command's code", async () => {
    coordinator ??= await startCoordinator({ args: ['--report-interval', '1s'] });
    const a = run([
      'exec',
      '--job',
      'sea',
      '--coordinator',
      coordinator.address,
      '--window',
      '1m',
      '--',
      'sh',
      '-c',
      'echo from-the-job; exit 5',
    ]);
    assert.equal(await a.exited, 5);
    assert.equal(a.stdout(), 'from-the-job\n');
    assert.match(a.stderr(), /headroom-agent: granted token \S+ \(fencing \d+\) on host-a/);
  });

  it('runs the daemon: its session and load reports reach the coordinator (grpc-js and systeminformation are bundled)', async () => {
    coordinator ??= await startCoordinator({ args: ['--report-interval', '1s'] });
    const config = path.join(tempDir(), 'agent.yaml');
    fs.writeFileSync(config, `coordinator: ${coordinator.address}\nvm: vm-sea\n`);
    const a = run(['run', '--config', config]);
    const clients = connect(coordinator.address, grpc.credentials.createInsecure());
    try {
      const me = await waitFor(
        'the agent to report its load',
        async () => {
          const { agents } = await unary<v1.ListAgentsRequest, v1.ListAgentsResponse__Output>(
            clients.admin.ListAgents.bind(clients.admin),
            { host: '' },
          );
          const found = agents.find((x) => x.vm === 'vm-sea');
          return found?.connected && (found.lastLoad?.memTotalBytes ?? 0) > 0 ? found : undefined;
        },
        15_000,
      );
      assert.match(me.agentVersion, /^\d+\.\d+\.\d+/);
    } finally {
      clients.close();
    }
    await a.stop();
    assert.equal(await a.exited, 0);
    assert.match(a.stderr(), /INFO  headroom-agent stopped/);
  });

  it('validates a configuration (yaml and the cron evaluator are bundled)', async () => {
    const config = path.join(tempDir(), 'agent.yaml');
    fs.writeFileSync(
      config,
      'jobs:\n  - {name: n, schedule: "*/5 * * * * *", window: 1m, expectedDuration: 1m, command: ["true"]}\n',
    );
    const a = run(['check', '--config', config]);
    assert.equal(await a.exited, 0, a.stderr());
    assert.match(a.stdout(), /OK, coordinator 127\.0\.0\.1:7400, 1 job\(s\)/);
  });

  it('installs an fsfreeze hook that runs the executable itself, which reaches the daemon from a bare environment', async () => {
    coordinator ??= await startCoordinator({ args: ['--report-interval', '1s'] });
    const dir = tempDir();
    const socket = path.join(dir, 'agent.sock');
    const config = path.join(dir, 'agent.yaml');
    fs.writeFileSync(config, `coordinator: ${coordinator.address}\nvm: vm-sea-freeze\ncontrolSocket: ${socket}\n`);
    const daemon = run(['run', '--config', config]);
    await waitFor(
      'the daemon to listen on its control socket',
      () => /session up/.test(daemon.stderr()) && /control socket listening/.test(daemon.stderr()),
      15_000,
    );

    const install = run(['install-fsfreeze-hook', '--dir', path.join(dir, 'hook.d'), '--socket', socket]);
    assert.equal(await install.exited, 0, install.stderr());
    const script = path.join(dir, 'hook.d', 'headroom-agent');
    assert.match(
      fs.readFileSync(script, 'utf8'),
      new RegExp(`^exec ${binary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} freeze-notice "\\$1" --socket `, 'm'),
    );
    const r = execFileSync('env', ['-i', script, 'freeze'], { encoding: 'utf8' });
    assert.match(r, /freeze by qemu-guest-agent noted .*; coordinator told/);
  });
});
