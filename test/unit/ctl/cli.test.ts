import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import * as sinon from 'sinon';
import type { Clients } from '../../../common/client/connection';
import type { Logger } from '../../../common/util/log';
import { type CliEnvironment, COMMANDS, GLOBAL_OPTIONS, runCli } from '../../../ctl/cli';
import { parseArgs } from '../../../common/util/cli-args';

type Handler = (req: unknown) => { err?: Partial<grpc.ServiceError>; res?: unknown };

/** GetCluster as a single host answers it: `status` asks for it beside ListHosts. */
const SINGLE_HOST = { GetCluster: () => ({ res: { clustered: false, name: '', members: [], etcd: [] } }) };

/** An in-memory run of headroomctl against a fake AdminService whose methods answer through `handlers`. */
async function run(argv: string[], handlers: Record<string, Handler> = {}, env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const calls: { method: string; req: unknown; options: grpc.CallOptions }[] = [];
  const admin: Record<string, unknown> = {};
  for (const [method, handler] of Object.entries(handlers)) {
    admin[method] = (req: unknown, options: grpc.CallOptions, cb: (e: unknown, r?: unknown) => void) => {
      calls.push({ method, req, options });
      const { err, res } = handler(req);
      setImmediate(() => (err ? cb(Object.assign(new Error(err.details), err)) : cb(null, res)));
    };
  }
  const open = sinon.spy(
    (_address: string) => ({ admin, token: {}, agent: {}, close: () => {} }) as unknown as Clients,
  );
  const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
  const cli: CliEnvironment = {
    io: { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t) },
    env,
    now: () => Date.UTC(2026, 0, 15, 12),
    log: silent,
    onInterrupt: () => () => {},
    open,
  };
  const code = await runCli(argv, cli);
  return { code, stdout, stderr, calls, open };
}

const POLICY = {
  maxGuestTokens: 4,
  maxHypervisorTokens: 1,
  leaseTtlMs: 30_000,
  allowOverrun: false,
  reportIntervalMs: 10_000,
};

const NO_TARGETS = () => ({ res: { targets: [] } });

describe('ctl command line', () => {
  it('refuses an unknown option with exit 64 in one line: the nearest option and where the help is', async () => {
    const r = await run(['tokens', '--hots', 'a']);
    assert.equal(r.code, 64);
    assert.equal(
      r.stderr,
      "headroomctl: unknown option --hots (did you mean --host?); see 'headroomctl tokens --help'\n",
    );
    assert.equal(r.open.callCount, 0, 'no connection for a usage error');
  });

  it('refuses an unknown command and a missing one with exit 64', async () => {
    const unknown = await run(['stauts']);
    assert.equal(unknown.code, 64);
    assert.equal(
      unknown.stderr,
      `headroomctl: unknown command "stauts" (did you mean status?); see 'headroomctl --help'\n`,
    );
    assert.match((await run(['verison'])).stderr, /\(did you mean version\?\)/);
    const none = await run([]);
    assert.equal(none.code, 64);
    assert.match(none.stderr, /no command given/);
    const sub = await run(['policy', 'delete']);
    assert.equal(sub.code, 64);
    assert.match(sub.stderr, /policy: unknown subcommand "delete"; see 'headroomctl policy --help'/);
    assert.match((await run(['policy', 'sett'])).stderr, /policy: unknown subcommand "sett" \(did you mean set\?\)/);
  });

  it('names the option as typed, without parser internals, and asks for a unit on a bare duration', async () => {
    const r = await run(['policy', 'set', '--lease-ttl', '30']);
    assert.equal(r.code, 64);
    assert.equal(
      r.stderr,
      `headroomctl: --lease-ttl: "30" has no unit: write 30s, 30m or 30ms; see 'headroomctl policy set --help'\n`,
    );
    assert.equal(r.open.callCount, 0);
  });

  it("shows examples in every command's help, each accepted by the command's parser", async () => {
    for (const c of COMMANDS) {
      const help = await run([...c.name.split(' '), '--help']);
      assert.match(help.stdout, /\nExamples:\n {2}headroomctl /, c.name);
      assert.ok(c.examples.length > 0, c.name);
      for (const e of c.examples) {
        const words = shellWords(e).slice(c.name.split(' ').length);
        assert.doesNotThrow(
          () => parseArgs(words, [...GLOBAL_OPTIONS, ...c.options], { positionals: c.positionals, rest: c.rest }),
          e,
        );
      }
    }
    assert.match((await run(['--help'])).stdout, /\nExamples:\n/);
  });

  it('prints bash and zsh completion from the command table', async () => {
    const bash = await run(['completion', 'bash']);
    assert.equal(bash.code, 0);
    assert.match(bash.stdout, /complete -o default -F _headroomctl headroomctl/);
    assert.match(bash.stdout, /\*" policy set "\*\) opts="--host --max-guest /);
    assert.match(bash.stdout, /opts="status agents tokens /);
    const zsh = await run(['completion', 'zsh']);
    assert.match(zsh.stdout, /bashcompinit/);
    assert.equal((await run(['completion', 'fish'])).code, 64);
  });

  it('prints help on stdout with exit 0, for the program, a command and a group', async () => {
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    for (const c of COMMANDS) assert.ok(top.stdout.includes(`  ${c.name}`), c.name);
    const tokens = await run(['tokens', '--help']);
    assert.equal(tokens.code, 0);
    assert.match(tokens.stdout, /Usage: headroomctl \[global options\] tokens \[--host H\]/);
    assert.match(tokens.stdout, /--coordinator ADDR/);
    const viaHelp = await run(['help', 'policy', 'set']);
    assert.match(viaHelp.stdout, /--allow-overrun true\|false/);
    const group = await run(['policy', '--help']);
    assert.equal(group.code, 0);
    assert.match(group.stdout, /policy get/);
    assert.match(group.stdout, /policy set/);
    // Help wins over mistakes on the same line.
    assert.equal((await run(['tokens', '--bogus', '--help'])).code, 0);
  });

  it('prints the version, with --version and with version', async () => {
    for (const argv of [['--version'], ['version']]) {
      const r = await run(argv);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^headroomctl \d+\.\d+\.\d+\n$/);
    }
  });

  it('calls with a deadline and the coordinator from the environment when --coordinator is absent', async () => {
    const r = await run(
      ['status'],
      { ListHosts: () => ({ res: { hosts: [] } }), ListTargets: NO_TARGETS, ...SINGLE_HOST },
      { HEADROOM_COORDINATOR: '127.0.0.1:7999' },
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'no hosts\n');
    assert.equal(r.open.firstCall.args[0], '127.0.0.1:7999');
    assert.ok(r.calls[0].options.deadline instanceof Date, 'a deadline is set');
  });

  it('says so with exit 1 when status is asked for a host the coordinator does not know', async () => {
    const hosts = [
      {
        host: 'host-a',
        paused: false,
        pauseReason: '',
        fencing: 0,
        policy: POLICY,
        activeGuest: 0,
        activeHypervisor: 0,
        queued: 0,
        agentsConnected: 0,
      },
    ];
    const r = await run(['status', '--host', 'host-x'], {
      ListHosts: () => ({ res: { hosts } }),
      ListTargets: NO_TARGETS,
      ...SINGLE_HOST,
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'headroomctl: no host named host-x\n');
    const ok = await run(['status', '--host', 'host-a'], {
      ListHosts: () => ({ res: { hosts } }),
      ListTargets: NO_TARGETS,
      ...SINGLE_HOST,
    });
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /\nhost-a\s+active\s/);
  });

  it("shows each shared target's backups and I/O against its limits after the hosts", async () => {
    const targets = [
      {
        name: 'pbs1',
        maxConcurrent: 3,
        ioBudgetBytesPerSec: 200 * 1024 * 1024,
        active: 2,
        ioBytesPerSec: 100 * 1024 * 1024,
        queued: 1,
      },
    ];
    const r = await run(['status'], {
      ListHosts: () => ({ res: { hosts: [] } }),
      ListTargets: () => ({ res: { targets } }),
      ...SINGLE_HOST,
    });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /TARGET\s+BACKUPS\s+I\/O IN USE\s+I\/O BUDGET\s+QUEUED\n/);
    assert.match(r.stdout, /\npbs1\s+2\/3\s+100 MiB\/s\s+200 MiB\/s\s+1\n/);
  });

  it('takes global options after the command too, and --coordinator over the environment', async () => {
    const r = await run(
      ['status', '--coordinator', '127.0.0.1:7001', '--json'],
      { ListHosts: () => ({ res: { hosts: [] } }), ListTargets: NO_TARGETS, ...SINGLE_HOST },
      {
        HEADROOM_COORDINATOR: '127.0.0.1:7999',
      },
    );
    assert.equal(r.open.firstCall.args[0], '127.0.0.1:7001');
    assert.deepEqual(JSON.parse(r.stdout), { hosts: [], targets: [] });
  });

  it('refuses a malformed address and half a client certificate as usage errors', async () => {
    assert.equal((await run(['--coordinator', 'a:b:c', 'status'])).code, 64);
    const half = await run(['status', '--tls-cert', 'c.pem']);
    assert.equal(half.code, 64);
    assert.match(half.stderr, /--tls-cert and --tls-key go together/);
  });

  it('prints a failed call as method, status name and details with exit 1', async () => {
    const r = await run(['revoke', 'abc', '--reason', 'r'], {
      RevokeToken: () => ({ err: { code: grpc.status.NOT_FOUND, details: 'no active token abc' } }),
    });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'headroomctl: RevokeToken: NOT_FOUND: no active token abc\n');
  });

  it('says that the coordinator is unreachable, naming its address', async () => {
    const r = await run(['--coordinator', '127.0.0.1:1', 'tokens'], {
      ListTokens: () => ({ err: { code: grpc.status.UNAVAILABLE, details: 'connect ECONNREFUSED' } }),
    });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'headroomctl: ListTokens: UNAVAILABLE: the coordinator at 127.0.0.1:1 is unreachable (connect ECONNREFUSED)\n',
    );
  });

  it("acts on the coordinator's own host when a one-host command is given no --host, as policy and plan do", async () => {
    const info = { host: 'pve1', paused: true, pauseReason: 'x', queued: 0 };
    for (const [argv, method] of [
      [['pause'], 'PauseHost'],
      [['resume'], 'ResumeHost'],
      [['policy', 'get'], 'GetPolicy'],
    ] as const) {
      const r = await run([...argv], { [method]: () => ({ res: method === 'GetPolicy' ? POLICY : info }) });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((r.calls[0].req as { host: string }).host, '', method);
    }
    for (const c of COMMANDS) {
      const host = c.options.find((o) => o.name === 'host');
      if (host && !host.help.includes('required') && !host.help.includes('every host') && !c.name.startsWith('pki')) {
        assert.match(host.help, /\(default: the coordinator's own host\)$/, c.name);
      }
    }
  });

  it('sends only the policy fields given, converting durations to milliseconds', async () => {
    const r = await run(['policy', 'set', '--host', 'h1', '--lease-ttl', '1m30s', '--allow-overrun', 'false'], {
      SetPolicy: (req) => ({ res: { ...POLICY, ...(req as object) } }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.calls[0].req, { host: 'h1', leaseTtlMs: 90_000, allowOverrun: false });
    assert.match(r.stdout, /lease ttl:\s+1m30s/);
  });

  it('refuses policy set without a field, and a malformed duration naming the option', async () => {
    const none = await run(['policy', 'set', '--host', 'h1'], { SetPolicy: () => ({ res: POLICY }) });
    assert.equal(none.code, 64);
    assert.match(none.stderr, /nothing to set/);
    assert.equal(none.calls.length, 0);
    const bad = await run(['policy', 'set', '--lease-ttl', 'soon']);
    assert.equal(bad.code, 64);
    assert.match(bad.stderr, /--lease-ttl: expected a duration/);
  });

  it('requires --host for host-backup, and the command after -- for it', async () => {
    const noHost = await run(['host-backup', '--vm', 'v', '--', 'true']);
    assert.equal(noHost.code, 64);
    assert.match(noHost.stderr, /missing required option --host/);
    const hb = await run(['host-backup', '--host', 'h', '--vm', 'v']);
    assert.equal(hb.code, 64);
    assert.match(hb.stderr, /missing the command to run: put it after "--"/);
    const rev = await run(['revoke']);
    assert.equal(rev.code, 64);
    assert.match(rev.stderr, /missing TOKEN_ID/);
  });

  it('revokes the one active token a prefix names', async () => {
    const active = [
      { tokenId: 'aaaa1111-2222', kind: 'GUEST', host: 'h', vm: 'v1', job: 'j', fencing: 3 },
      { tokenId: 'bbbb1111-2222', kind: 'GUEST', host: 'h', vm: 'v2', job: 'j', fencing: 4 },
    ];
    const r = await run(['revoke', 'bbbb'], {
      ListTokens: () => ({ res: { active, queued: [] } }),
      RevokeToken: (req) => ({
        res: { token: active.find((t) => t.tokenId === (req as { tokenId: string }).tokenId) },
      }),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.calls[1].req, { tokenId: 'bbbb1111-2222', reason: '' });
    assert.match(r.stdout, /revoked token bbbb1111-2222 \(GUEST v2\/j on h, fencing 4\)/);
  });
});

/** The words of an example as a shell would split them: single or double quotes group words. */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}
