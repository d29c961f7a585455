/**
 * The snapshot admin calls under the coordinator's own PKI: an agent's and the host's certificates are
 * refused with PERMISSION_DENIED (the one auth interceptor), the admin's is served; and a backup the
 * coordinator starts itself calls it back over mutual TLS with the admin identity of its PKI directory.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { type Clients, connect, unary } from '../../../common/client/connection';
import { initPki } from '../../../coordinator/pki/init';
import type { BackupRun__Output } from '../../../proto/generated/headroom/v1';
import {
  type RunningCoordinator,
  startCoordinator,
  tempDir,
  TEST_START_POLICY,
} from '../../helpers/coordinator-process';
import { waitFor } from '../../helpers/wait';
import { type PkiFixture, adminPem, hostPem, silent, startPkiCoordinator } from './pki-fixture';

async function code(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
    return { code: grpc.status.OK, details: '' };
  } catch (err) {
    return { code: (err as grpc.ServiceError).code, details: (err as grpc.ServiceError).details };
  }
}

describe('snapshot admin calls under mutual TLS', function () {
  this.timeout(60_000);

  describe('roles', () => {
    let pki: PkiFixture;
    before(async () => {
      pki = await startPkiCoordinator();
    });
    after(async () => {
      await pki?.close();
    });

    it('refuses an agent and the host identity with PERMISSION_DENIED, and serves the admin', async () => {
      const agent = pki.clients(await pki.enrollAgent('vm1'));
      const host = pki.clients(hostPem(pki.pkiDir));
      for (const [who, clients] of [
        ['agent', agent],
        ['host', host],
      ] as const) {
        for (const method of [
          'ListBackups',
          'PruneBackups',
          'StartBackup',
          'CancelBackup',
          'ListBackupRuns',
          'GetBackup',
        ] as const) {
          const r = await code(
            unary(
              (clients.admin[method] as never as (...a: unknown[]) => grpc.ClientUnaryCall).bind(
                clients.admin,
              ) as never,
              { vm: 'vm1', id: 'x', keepLast: 1 },
            ),
          );
          assert.equal(r.code, grpc.status.PERMISSION_DENIED, `${who} ${method}: ${r.details}`);
          assert.match(r.details, new RegExp(`AdminService\\.${method} needs the admin role`));
        }
        const stream = await code(
          new Promise((resolve, reject) => {
            const call = clients.admin.VerifyBackups({});
            call.on('data', () => {});
            call.on('error', reject);
            call.on('end', resolve);
          }),
        );
        assert.equal(stream.code, grpc.status.PERMISSION_DENIED, `${who} VerifyBackups`);
      }
      // The admin passes the interceptor and meets the missing configuration instead.
      const asAdmin = await code(unary(pki.admin.admin.ListBackups.bind(pki.admin.admin), {}));
      assert.equal(asAdmin.code, grpc.status.FAILED_PRECONDITION, asAdmin.details);
    });
  });

  describe('a backup the coordinator starts itself', () => {
    let coordinator: RunningCoordinator;
    let admin: Clients;
    let dir: string;

    before(async () => {
      dir = tempDir('headroom-offhost-pki-');
      const pkiDir = path.join(dir, 'pki');
      await initPki({
        dir: pkiDir,
        host: 'host-a',
        serverNames: ['localhost', '127.0.0.1'],
        admin: 'admin',
        log: silent,
      });
      const config = path.join(dir, 'coordinator.yaml');
      fs.writeFileSync(
        config,
        [
          TEST_START_POLICY.trimEnd(),
          `backups: { dir: ${path.join(dir, 'backups')} }`,
          'hypervisorJobs:',
          '  - { name: dump, vms: [vm1], schedule: "0 3 * * *", window: 1h, expectedDuration: 1m, driver: command, command: [sh, -c, "echo dumped {vm}"] }',
        ].join('\n'),
      );
      coordinator = await startCoordinator({ host: 'host-a', args: ['--pki-dir', pkiDir, '--config', config] });
      const pem = adminPem(pkiDir);
      admin = connect(
        coordinator.address.replace('127.0.0.1', 'localhost'),
        grpc.credentials.createSsl(
          fs.readFileSync(pem.caFile),
          fs.readFileSync(pem.keyFile!),
          fs.readFileSync(pem.certFile!),
        ),
      );
    });
    after(async () => {
      admin?.close();
      await coordinator?.kill();
    });

    it('runs host-backup as a child that calls back over TLS with the admin identity, under a HYPERVISOR token', async () => {
      const started = await unary(admin.admin.StartBackup.bind(admin.admin), { vm: 'vm1' });
      let run: BackupRun__Output | undefined;
      await waitFor(
        async () => {
          run = (await unary(admin.admin.ListBackupRuns.bind(admin.admin), { vm: 'vm1' })).runs.find(
            (r) => r.runId === started.runId,
          );
          return run?.state !== 'BACKUP_RUN_STATE_RUNNING';
        },
        30_000,
        'the run to end',
      );
      assert.equal(run!.state, 'BACKUP_RUN_STATE_SUCCEEDED', run!.outputTail);
      assert.match(run!.outputTail, /^dumped vm1$/m);
      assert.ok(run!.argv.includes('--pki-dir'), run!.argv.join(' '));
      const { events } = await unary(admin.admin.ListHistory.bind(admin.admin), { host: 'host-a' });
      assert.deepEqual(
        events.filter((e) => e.kind === 'TOKEN_KIND_HYPERVISOR').map((e) => `${e.type} ${e.job} ${e.vm}`),
        ['HISTORY_EVENT_TYPE_GRANTED dump vm1', 'HISTORY_EVENT_TYPE_RELEASED dump vm1'],
      );
    });
  });
});
