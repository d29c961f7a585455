/**
 * What every qmp driver test starts from: a real qemu-storage-daemon with two qcow2 disks (8 and 4 MiB)
 * in a fresh directory, a catalog beside them, and one call to back the "VM" up.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../../common/util/log';
import type { BackupRecord } from '../../../host-backup/catalog/chain-rules';
import { ManifestStore } from '../../../host-backup/catalog/manifest-store';
import { type QmpBackupOptions, type QmpBackupResult, backupVm } from '../../../host-backup/hypervisor/qmp-driver';
import { StorageDaemon } from './storage-daemon';

export const KiB = 1024;
export const MiB = 1024 * KiB;
/** qcow2's default cluster size, and so the bitmaps' default granularity. */
export const CLUSTER = 64 * KiB;

export interface Fixture {
  dir: string;
  daemon: StorageDaemon;
  store: ManifestStore;
}

/** Sets up a fresh fixture before each test of the calling suite and tears it down after. */
export function useFixture(): Fixture {
  const f = {} as Fixture;
  beforeEach(async () => {
    f.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-qmp-'));
    f.daemon = new StorageDaemon(f.dir, [
      { name: 'disk0', size: 8 * MiB },
      { name: 'disk1', size: 4 * MiB },
    ]);
    await f.daemon.start();
    f.store = ManifestStore.open(path.join(f.dir, 'backups'), { create: true });
  });
  afterEach(async () => {
    await f.daemon.kill();
    fs.rmSync(f.dir, { recursive: true, force: true });
  });
  return f;
}

/** Backs up both disks of the daemon as VM "vm1". */
export async function backup(f: Fixture, extra: Partial<QmpBackupOptions> = {}): Promise<QmpBackupResult> {
  const client = await f.daemon.connect();
  try {
    return await backupVm(client, {
      vm: 'vm1',
      disks: f.daemon.disks.map((d) => ({ name: d.name, node: d.name })),
      store: f.store,
      now: Date.now,
      log: createLogger({ level: 'silent' }),
      pollIntervalMs: 50,
      ...extra,
    });
  } finally {
    client.close();
  }
}

export function recordOf(result: QmpBackupResult, disk: string): BackupRecord {
  const r = result.disks.find((d) => d.disk === disk);
  assert.ok(r?.record, `no record for ${disk}: ${result.message}`);
  return r.record;
}

/** headroomctl's arguments for `host-backup --driver qmp` of host-a's vm1: the QEMU at `qmpSocket` into `target`. */
export function qmpHostBackupArgs(
  coordinator: string,
  qmpSocket: string,
  target: string,
  ...extra: string[]
): string[] {
  return [
    '--coordinator',
    coordinator,
    'host-backup',
    '--host',
    'host-a',
    '--vm',
    'vm1',
    '--driver',
    'qmp',
    '--qmp-socket',
    qmpSocket,
    '--target',
    target,
    ...extra,
  ];
}
