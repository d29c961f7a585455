/**
 * What the libvirt driver tests start from: libvirt running (test/helpers/libvirtd.ts), a fresh test
 * domain per test with the disks asked for, a catalog beside it, and one call to back the domain up
 * through runLibvirtBackup, as `headroomctl libvirt-backup` does.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../../common/util/log';
import { ManifestStore } from '../../../host-backup/catalog/manifest-store';
import type { DriverRunOutcome } from '../../../host-backup/driver-run';
import { type LibvirtBackupRunOptions, runLibvirtBackup } from '../../../host-backup/libvirt-backup';
import {
  LIBVIRT_URI,
  type TestDomain,
  type TestDomainOptions,
  ensureLibvirtd,
  startTestDomain,
} from '../../helpers/libvirtd';

export const KiB = 1024;
export const MiB = 1024 * KiB;
/** qcow2's default cluster size, and so the bitmaps' granularity. */
export const CLUSTER = 64 * KiB;

const run = promisify(execFile);

export interface LibvirtFixture {
  dir: string;
  domain: TestDomain;
  store: ManifestStore;
  /** Backs the domain up (by UUID unless `domain` is given); throws unless the run ends as `expect` (default done). */
  backup(extra?: Partial<LibvirtBackupRunOptions>, expect?: DriverRunOutcome['status']): Promise<DriverRunOutcome>;
  /** A raw copy of a disk as it is now (the domain has no OS: only the test writes to it). */
  copyNow(target: string, name: string): Promise<string>;
}

/** Sets up a fresh domain and catalog before each test of the calling suite, and removes them after. */
export function useLibvirtFixture(options: TestDomainOptions): LibvirtFixture {
  const f = {} as LibvirtFixture;
  before(ensureLibvirtd);
  beforeEach(async () => {
    f.domain = undefined as unknown as TestDomain;
    f.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-libvirt-test-'));
    // QEMU (libvirt's qemu user) writes the backups: the catalog's directories must let it in.
    fs.chmodSync(f.dir, 0o755);
    f.domain = await startTestDomain(options);
    f.store = ManifestStore.open(path.join(f.dir, 'backups'), { create: true });
  });
  afterEach(async () => {
    // Absent when it could not start (the failure is beforeEach's).
    await f.domain?.destroy();
    fs.rmSync(f.dir, { recursive: true, force: true });
  });
  f.backup = async (extra = {}, expect = 'done') => {
    const outcome = await runLibvirtBackup({
      domain: f.domain.uuid,
      uri: LIBVIRT_URI,
      target: f.store.dir,
      forceFull: false,
      now: Date.now,
      signal: new AbortController().signal,
      log: createLogger({ level: 'silent' }),
      ...extra,
    });
    if (outcome.status !== expect)
      throw new Error(`backup ended ${outcome.status}, not ${expect}: ${outcome.failure ?? outcome.result?.message}`);
    return outcome;
  };
  f.copyNow = async (target, name) => {
    const disk = f.domain.disks.find((d) => d.target === target)!;
    const out = path.join(f.dir, `${name}.raw`);
    await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', disk.file, out]);
    return out;
  };
  return f;
}

/** `qemu-img compare` of two images: true when they read the same. */
export async function sameContent(a: string, b: string): Promise<boolean> {
  try {
    await run('qemu-img', ['compare', '-q', a, b]);
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 1) return false;
    throw err;
  }
}
