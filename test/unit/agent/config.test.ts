import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileAgentConfig, loadAgentConfig, parseAgentConfigText } from '../../../agent/config';
import { ConfigError } from '../../../common/util/config-error';
import { DURATION_SYNTAX } from '../../../common/util/duration';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
    return [...err.problems];
  }
  assert.fail('expected the configuration to be refused');
}

const job = {
  name: 'nightly',
  schedule: '0 2 * * *',
  window: '2h',
  expectedDuration: '30m',
  command: ['restic', 'backup', '/data'],
};

describe('agent configuration', () => {
  it('applies the defaults to a minimal file', () => {
    const c = compileAgentConfig({}, 'agent.yaml');
    assert.equal(c.coordinator, '127.0.0.1:7400');
    assert.equal(c.vm, '');
    assert.equal(c.host, '');
    assert.equal(c.onUnreachable, 'skip');
    assert.equal(c.killGraceMs, 10_000);
    assert.deepEqual(c.jobs, []);
    assert.equal(c.tls, undefined);
    assert.deepEqual(c.budget, { enforcement: 'auto', cgroupParent: '' });
  });

  it('reads how budgets are enforced, and refuses a mechanism, cgroup or memory limit it does not know, naming the key', () => {
    const c = compileAgentConfig(
      { budget: { enforcement: 'cgroup-v1', cgroupParent: '/headroom.slice', memoryHighMiB: 256 } },
      'agent.yaml',
    );
    assert.deepEqual(c.budget, { enforcement: 'cgroup-v1', cgroupParent: '/headroom.slice', memoryHighMiB: 256 });
    const list = problems(() =>
      compileAgentConfig(
        { budget: { enforcement: 'cgroups', cgroupParent: 'relative/../x', memoryHighMiB: -1, nice: 5 } },
        'agent.yaml',
      ),
    );
    assert.deepEqual(list, [
      'agent.yaml: budget.enforcement: expected "auto", "cgroup-v2", "cgroup-v1" or "signals", got "cgroups"',
      'agent.yaml: budget.cgroupParent: expected an absolute cgroup path such as "/headroom.slice" (no ".."), got "relative/../x"',
      'agent.yaml: budget.memoryHighMiB: expected an integer from 0 to 1073741824, got -1',
      'agent.yaml: budget.nice: unknown key (expected one of: enforcement, cgroupParent, memoryHighMiB)',
    ]);
    assert.deepEqual(
      problems(() => compileAgentConfig({ budget: 'signals' }, 'agent.yaml')),
      ['agent.yaml: budget: expected a mapping with enforcement, cgroupParent, memoryHighMiB, got "signals"'],
    );
  });

  it('takes an absolute controlSocket, and refuses a relative or too long one naming the file and key', () => {
    assert.equal(compileAgentConfig({ controlSocket: '/run/h.sock' }, 'agent.yaml').controlSocket, '/run/h.sock');
    assert.equal(compileAgentConfig({}, 'agent.yaml').controlSocket, undefined, 'unset: the default, best effort');
    assert.deepEqual(
      problems(() => compileAgentConfig({ controlSocket: 'h.sock' }, 'agent.yaml')),
      [
        'agent.yaml: controlSocket: expected an absolute path of at most 107 bytes (a unix socket\'s limit), got "h.sock"',
      ],
    );
    assert.equal(problems(() => compileAgentConfig({ controlSocket: `/${'x'.repeat(107)}` }, 'agent.yaml')).length, 1);
  });

  it('reads jobs with durations, priority, cost and shared target', () => {
    const c = compileAgentConfig(
      {
        jobs: [
          {
            ...job,
            schedule: '*/10 * * * * *',
            priority: 5,
            cost: { ioBytesPerSec: 50_000_000, cpuPercent: 80 },
            sharedTarget: 'pbs1',
          },
        ],
        killGrace: '30s',
      },
      'agent.yaml',
    );
    assert.deepEqual(c.jobs[0], {
      name: 'nightly',
      schedule: '*/10 * * * * *',
      windowMs: 7_200_000,
      expectedDurationMs: 1_800_000,
      command: ['restic', 'backup', '/data'],
      priority: 5,
      cost: { ioBytesPerSec: 50_000_000, cpuPercent: 80 },
      sharedTarget: 'pbs1',
    });
    assert.equal(compileAgentConfig({ jobs: [job] }, 'a.yaml').jobs[0].sharedTarget, '');
    assert.equal(c.killGraceMs, 30_000);
    assert.equal(compileAgentConfig({ killGraceMs: 2500 }, 'a.yaml').killGraceMs, 2500);
  });

  it('collects every problem, each naming the file, the key path and what was expected', () => {
    const list = problems(() =>
      compileAgentConfig(
        {
          coordiantor: 'x',
          onUnreachable: 'maybe',
          killGraceMs: 'soon',
          jobs: [
            job,
            { ...job, schedule: 'every day', window: '2x', command: 'restic backup /data' },
            { ...job, name: 'nightly', expectedDuration: undefined, extra: true },
          ],
        },
        '/etc/headroom/agent.yaml',
      ),
    );
    const expected = [
      /^\/etc\/headroom\/agent\.yaml: coordiantor: unknown key \(expected one of: coordinator, /,
      /^\/etc\/headroom\/agent\.yaml: onUnreachable: expected "skip" or "run", got "maybe"$/,
      /^\/etc\/headroom\/agent\.yaml: killGraceMs: expected an integer from 0 to \d+, got "soon"$/,
      /^\/etc\/headroom\/agent\.yaml: jobs\[1\]\.schedule: invalid cron expression "every day": .*\(expected 5 fields, or 6 with seconds first\)$/,
      /^\/etc\/headroom\/agent\.yaml: jobs\[1\]\.window: expected a duration such as .*, got "2x"$/,
      /^\/etc\/headroom\/agent\.yaml: jobs\[1\]\.command: expected the command as a list of strings, such as \[restic, backup, \/data\] \(a single string is not split by a shell/,
      /^\/etc\/headroom\/agent\.yaml: jobs\[2\]\.extra: unknown key \(expected one of: name, schedule, /,
      /^\/etc\/headroom\/agent\.yaml: jobs\[2\]\.expectedDuration: missing \(expected a duration/,
      /^\/etc\/headroom\/agent\.yaml: jobs\[1\]\.name: duplicate job name "nightly" \(also jobs\[0\]\)$/,
      /^\/etc\/headroom\/agent\.yaml: jobs\[2\]\.name: duplicate job name "nightly" \(also jobs\[0\]\)$/,
    ];
    for (const re of expected)
      assert.ok(
        list.some((p) => re.test(p)),
        `no problem matches ${re}:\n${list.join('\n')}`,
      );
    assert.equal(list.length, expected.length, list.join('\n'));
  });

  it('refuses cron expressions with the wrong number of fields or impossible dates', () => {
    for (const schedule of ['* * *', '* * * *', '1 2 3 4 5 6 7', '0 0 30 2 *', '61 * * * *', '']) {
      const list = problems(() => compileAgentConfig({ jobs: [{ ...job, schedule }] }, 'agent.yaml'));
      assert.equal(list.length, 1, list.join('\n'));
      assert.match(list[0], /^agent\.yaml: jobs\[0\]\.schedule: /);
    }
    for (const schedule of ['0 2 * * *', '*/5 * * * * *', '@daily', '0 3 * * MON-FRI']) {
      assert.equal(compileAgentConfig({ jobs: [{ ...job, schedule }] }, 'agent.yaml').jobs[0].schedule, schedule);
    }
  });

  it('refuses plaintext to a remote coordinator unless TLS files are given', () => {
    const list = problems(() => compileAgentConfig({ coordinator: '10.1.2.3:7400' }, 'agent.yaml'));
    assert.match(
      list[0],
      /^agent\.yaml: coordinator: plaintext to "10\.1\.2\.3:7400" is refused .*expected tls\.caFile/,
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-agent-config-'));
    const ca = path.join(dir, 'ca.pem');
    fs.writeFileSync(ca, 'not really a certificate');
    try {
      const c = compileAgentConfig({ coordinator: '10.1.2.3:7400', tls: { caFile: ca } }, 'agent.yaml');
      assert.deepEqual(c.tls, { caFile: ca });
      const tlsProblems = problems(() =>
        compileAgentConfig(
          { coordinator: 'coord.example:7400', tls: { caFile: ca, certFile: path.join(dir, 'missing.pem') } },
          'agent.yaml',
        ),
      );
      assert.deepEqual(
        tlsProblems.map((p) => p.replace(/: cannot read .*$/, ': cannot read')),
        [
          'agent.yaml: tls.certFile: cannot read',
          'agent.yaml: tls: certFile and keyFile go together (mutual TLS): give both or neither',
        ],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports YAML syntax errors with file, line and column', () => {
    const list = problems(() =>
      parseAgentConfigText('coordinator: 127.0.0.1:7400\njobs: [\n  - name: x\n', 'agent.yaml'),
    );
    assert.ok(list.length >= 1);
    assert.match(list[0], /^agent\.yaml:\d+:\d+: /);
    const dup = problems(() => parseAgentConfigText('vm: a\nvm: b\n', 'agent.yaml'));
    assert.match(dup[0], /^agent\.yaml:2:1: Map keys must be unique/);
  });

  it('names an unreadable file', () => {
    const list = problems(() => loadAgentConfig('/nonexistent/agent.yaml'));
    assert.deepEqual(list, ['/nonexistent/agent.yaml: cannot read the configuration (ENOENT)']);
  });

  it('accepts the example configuration', () => {
    const example = path.resolve(__dirname, '..', '..', '..', '..', 'examples', 'agent.yaml');
    const c = loadAgentConfig(example);
    assert.ok(c.jobs.length >= 1);
  });

  describe('quiesce section', () => {
    it('defaults to the hooks directory alone, a 10 s hold capped at 60 s', () => {
      assert.deepEqual(compileAgentConfig({}, 'agent.yaml').quiesce, {
        hooksDir: '/etc/headroom/quiesce.d',
        defaultHoldMs: 10_000,
        maxHoldMs: 60_000,
        hookTimeoutMs: 10_000,
        fsfreeze: [],
      });
    });

    it('reads the hooks, their bounds and the database connections with their defaults', () => {
      const c = compileAgentConfig(
        {
          quiesce: {
            hooksDir: '/etc/qemu/fsfreeze-hook.d',
            defaultHold: '5s',
            maxHold: '30s',
            hookTimeout: '4s',
            fsfreeze: ['/srv/db', '/srv/files'],
            postgresql: {
              host: '/run/postgresql',
              port: 5433,
              passwordFile: '/etc/headroom/pg.pass',
              osUser: 'postgres',
            },
            mysql: { socket: '/run/mysqld/mysqld.sock', user: 'backup', defaultsFile: '/etc/mysql/debian.cnf' },
          },
        },
        'agent.yaml',
      );
      assert.deepEqual(c.quiesce, {
        hooksDir: '/etc/qemu/fsfreeze-hook.d',
        defaultHoldMs: 5_000,
        maxHoldMs: 30_000,
        hookTimeoutMs: 4_000,
        fsfreeze: ['/srv/db', '/srv/files'],
        postgresql: {
          psql: 'psql',
          host: '/run/postgresql',
          port: 5433,
          user: 'postgres',
          database: 'postgres',
          passwordFile: '/etc/headroom/pg.pass',
          osUser: 'postgres',
          labelDir: '/var/lib/headroom/backup-labels',
        },
        mysql: {
          client: '',
          socket: '/run/mysqld/mysqld.sock',
          host: '',
          user: 'backup',
          defaultsFile: '/etc/mysql/debian.cnf',
        },
      });
    });

    it('refuses bad settings, naming file and key', () => {
      const list = problems(() =>
        compileAgentConfig(
          {
            quiesce: {
              hooksDir: 'relative/dir',
              defaultHold: '2m',
              maxHold: '1m',
              hookTimeout: 'soon',
              fsfreeze: ['/srv', 'srv2', '/srv', '/'],
              postgresql: { port: 70_000, passwordFile: 'pg.pass', sslmode: 'require' },
              mysql: 'root@localhost',
              freezeRoot: true,
            },
          },
          'agent.yaml',
        ),
      );
      assert.deepEqual(list, [
        'agent.yaml: quiesce.hooksDir: expected an absolute path, got "relative/dir"',
        `agent.yaml: quiesce.hookTimeout: expected ${DURATION_SYNTAX}, got "soon"`,
        'agent.yaml: quiesce.fsfreeze[1]: expected the absolute path of a mount point, got "srv2"',
        'agent.yaml: quiesce.fsfreeze[3]: the root filesystem cannot be frozen by the agent (its own log writes would hang it): leave it to the hypervisor snapshot',
        'agent.yaml: quiesce.fsfreeze[2]: duplicate mount point "/srv"',
        'agent.yaml: quiesce.postgresql.port: expected an integer from 1 to 65535, got 70000',
        'agent.yaml: quiesce.postgresql.passwordFile: expected an absolute path, got "pg.pass"',
        'agent.yaml: quiesce.postgresql.sslmode: unknown key (expected one of: psql, host, port, user, database, passwordFile, osUser, labelDir)',
        'agent.yaml: quiesce.mysql: expected a mapping with client, socket, host, port, user, passwordFile, defaultsFile, got "root@localhost"',
        'agent.yaml: quiesce.freezeRoot: unknown key (expected one of: hooksDir, defaultHold, maxHold, hookTimeout, fsfreeze, postgresql, mysql)',
        'agent.yaml: quiesce.defaultHold: expected at most maxHold (1m), got "2m"',
      ]);
    });
  });
});
