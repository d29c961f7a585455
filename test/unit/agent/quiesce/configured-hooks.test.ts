import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileAgentConfig } from '../../../../agent/config';
import { createQuiescer } from '../../../../agent/quiesce/configured-hooks';
import type { ClientSession, ProcessRunner } from '../../../../agent/quiesce/process-runner';

/** Records every command run and every statement sent; everything succeeds. */
function recordingRunner(log: string[]): ProcessRunner {
  return {
    async run(argv) {
      log.push(argv.join(' '));
      return { exitCode: 0, signal: null, output: '' };
    },
    open(argv): ClientSession {
      const client = path.basename(argv[0]);
      return {
        async exchange(input, marker) {
          log.push(`${client}: ${input.split('\n')[input.includes('lock_wait_timeout') ? 1 : 0]}`);
          return marker.includes('stopped')
            ? JSON.stringify({ lsn: '0/3000100', labelfile: 'START WAL LOCATION: 0/3000028\n', spcmapfile: '' })
            : '0/3000028';
        },
        async close() {
          return { exitCode: 0, signal: null, output: '' };
        },
        kill() {},
      };
    },
  };
}

describe('configured quiesce hooks', () => {
  it('freeze databases, then the hooks directory, then filesystems; thaw in reverse', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-hooks-'));
    const labels = path.join(dir, 'labels');
    fs.mkdirSync(path.join(dir, 'hooks'));
    fs.writeFileSync(path.join(dir, 'hooks', '50-app'), '#!/bin/sh\n', { mode: 0o755 });
    const config = compileAgentConfig(
      {
        quiesce: {
          hooksDir: path.join(dir, 'hooks'),
          fsfreeze: ['/srv/db', '/srv/files'],
          postgresql: { psql: '/usr/bin/psql', labelDir: labels },
          mysql: { client: '/usr/bin/mariadb', socket: '/run/mysqld/mysqld.sock' },
        },
      },
      'agent.yaml',
    );
    const log: string[] = [];
    const q = createQuiescer(config.quiesce, { runner: recordingRunner(log) });
    const frozen = await q.freeze('tok-1', 0);
    assert.equal(frozen.state, 'FROZEN', JSON.stringify(frozen));
    assert.deepEqual(
      frozen.hooks.map((h) => h.name),
      ['postgresql', 'mysql', '50-app', 'fsfreeze:/srv/db', 'fsfreeze:/srv/files'],
    );
    const thawed = await q.thaw('tok-1');
    assert.equal(thawed.ok, true, thawed.message);
    assert.deepEqual(log, [
      "psql: SELECT pg_backup_start('headroom tok-1', fast => true);",
      'mariadb: FLUSH TABLES WITH READ LOCK;',
      `${path.join(dir, 'hooks', '50-app')} freeze`,
      'fsfreeze --freeze /srv/db',
      'fsfreeze --freeze /srv/files',
      'fsfreeze --unfreeze /srv/files',
      'fsfreeze --unfreeze /srv/db',
      `${path.join(dir, 'hooks', '50-app')} thaw`,
      'mariadb: UNLOCK TABLES;',
      "psql: SELECT json_build_object('lsn', lsn, 'labelfile', labelfile, 'spcmapfile', spcmapfile) FROM pg_backup_stop(wait_for_archive => false);",
    ]);
    assert.equal(fs.readFileSync(path.join(labels, 'tok-1.backup_label'), 'utf8'), 'START WAL LOCATION: 0/3000028\n');
    assert.equal(fs.existsSync(path.join(labels, 'tok-1.tablespace_map')), false, 'no tablespaces, no map');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
