/**
 * The coordinator's database on a real filesystem that fills up (a small tmpfs) or that the kernel turns
 * read-only after an error (ext4 on a loop device, errors=remount-ro): new grants and releases are
 * refused with UNAVAILABLE and one clear log line, the coordinator keeps running, a held token can still
 * be renewed, and nothing is corrupted. Service resumes when space returns; a filesystem the kernel made
 * read-only stays so until it is unmounted and checked, so there the coordinator serves again once
 * restarted on the repaired filesystem. Health (grpc.health.v1 and HTTP /healthz) says NOT_SERVING, with the
 * reason, for as long as the database cannot commit, and SERVING again after. Mounting needs root: without it these tests say so and skip; as root a
 * mount that fails fails the test.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import type { Clients } from '../../../common/client/connection';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { grpcHealth, httpHealth } from '../../helpers/health';
import { acquire, connectPlain, grant, release, renew, statusOf } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { isRoot, requireTool } from '../../helpers/require-tool';

const OUTAGE_LOG = 'cannot write the database';
const RECOVERY_LOG = 'the database can be written again';

/** Fills the filesystem holding `dir` with one file until it is full; returns that file. */
function fill(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

function count(text: string, needle: string): number {
  return text.split(needle).length - 1;
}

describe('coordinator whose database cannot be written (disk full, read-only)', function () {
  let coordinator: RunningCoordinator | undefined;
  let clients: Clients | undefined;
  const unmount: string[] = [];

  afterEach(async () => {
    clients?.close();
    await coordinator?.stop();
    coordinator = undefined;
    for (const dir of unmount.splice(0)) execFileSync('umount', [dir]);
  });

  beforeEach(function () {
    if (!isRoot()) {
      // Say why rather than fake a full or read-only disk.
      console.log('      skipped: mounting a tmpfs or an ext4 image needs root');
      this.skip();
    }
    requireTool('mount', 'mount');
    requireTool('findmnt', 'util-linux');
    requireTool('mkfs.ext4', 'e2fsprogs');
    requireTool('e2fsck', 'e2fsprogs');
  });

  /** Mounts with `mount ARGS… DIR` a fresh directory. */
  function mountFresh(args: string[]): string {
    const dir = tempDir('headroom-diskfull-');
    execFileSync('mount', [...args, dir], { stdio: 'pipe' });
    unmount.push(dir);
    return dir;
  }

  /** A coordinator with its database at `dbPath` and its HTTP listener on. */
  async function start(dbPath: string) {
    const config = path.join(tempDir(), 'coordinator.yaml');
    fs.writeFileSync(config, `${TEST_START_POLICY}http:\n  listen: 127.0.0.1:0\n`);
    coordinator = await startCoordinator({ dbPath, host: 'disk-host', args: ['--config', config] });
    clients = connectPlain(coordinator.address);
  }

  /** A coordinator with its database in `dir`, holding a GUEST token for vm1. */
  async function startHolding(dir: string) {
    await start(path.join(dir, 'headroom.db'));
    await checkServing();
    return grant(clients!, { kind: 'TOKEN_KIND_GUEST', vm: 'vm1' });
  }

  async function checkServing() {
    assert.equal(await grpcHealth(coordinator!.address), 'SERVING');
    assert.equal(await grpcHealth(coordinator!.address, 'headroom.v1.TokenService'), 'SERVING');
    assert.deepEqual(await httpHealth(coordinator!.httpUrl!), { status: 200, text: 'SERVING\n' });
  }

  /** What must hold while the database cannot be written: refusals, renewals, the process up, one log line. */
  async function checkOutage(held: { tokenId: string; fencing: number }) {
    const refused = await statusOf(
      acquire(clients!, { requestId: 'refused-1', kind: 'TOKEN_KIND_GUEST', vm: 'vm2' }).done,
    );
    assert.equal(refused.code, grpc.status.UNAVAILABLE, refused.details);
    assert.match(refused.details, /cannot write its database/);
    const refusedAgain = await statusOf(
      acquire(clients!, { requestId: 'refused-2', kind: 'TOKEN_KIND_GUEST', vm: 'vm3' }).done,
    );
    assert.equal(refusedAgain.code, grpc.status.UNAVAILABLE);
    // Once the commit has failed, health says so at once, with why over HTTP.
    assert.equal(await grpcHealth(coordinator!.address), 'NOT_SERVING');
    assert.equal(await grpcHealth(coordinator!.address, 'headroom.v1.TokenService'), 'NOT_SERVING');
    const health = await httpHealth(coordinator!.httpUrl!);
    assert.equal(health.status, 503);
    assert.match(health.text, /^NOT_SERVING: cannot write the database: /);

    const renewed = await renew(clients!, held);
    assert.ok(renewed.expiresUnixMs > Date.now(), 'the holder renews its lease during the outage');
    assert.equal(
      (await statusOf(release(clients!, held))).code,
      grpc.status.UNAVAILABLE,
      'a release cannot be recorded',
    );

    assert.equal(coordinator!.process.exitCode, null, 'the coordinator is still running');
    await waitFor(() => coordinator!.log().includes(OUTAGE_LOG), 5_000, 'the outage logged');
    assert.equal(count(coordinator!.log(), OUTAGE_LOG), 1, 'the outage is logged once, not once per refused call');
  }

  /**
   * Service again: a grant, the held token released (and, when `logged`, the recovery said in the log);
   * then the history is whole and the database intact.
   */
  async function checkRecovery(held: { tokenId: string; fencing: number }, logged: boolean) {
    const next = await grant(clients!, { requestId: 'after-1', kind: 'TOKEN_KIND_GUEST', vm: 'vm2' });
    assert.ok(next.fencing > held.fencing);
    await checkServing();
    await release(clients!, held);
    await release(clients!, next);
    if (logged) await waitFor(() => coordinator!.log().includes(RECOVERY_LOG), 5_000, 'the recovery logged');
    const dbPath = coordinator!.dbPath;
    clients!.close();
    await coordinator!.stop();
    coordinator = undefined;

    const db = new Database(dbPath, { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      const rows = db
        .prepare('SELECT type, token_id AS tokenId, request_id AS requestId FROM history ORDER BY seq')
        .all() as {
        type: string;
        tokenId: string;
        requestId: string;
      }[];
      const of = (tokenId: string) => rows.filter((r) => r.tokenId === tokenId).map((r) => r.type);
      assert.deepEqual(
        of(held.tokenId).filter((t) => t !== 'RENEWED' && t !== 'RESTORED'),
        ['GRANTED', 'RELEASED'],
      );
      assert.deepEqual(of(next.tokenId), ['GRANTED', 'RELEASED']);
      assert.equal(rows.filter((r) => r.requestId.startsWith('refused-')).length, 0, 'nothing refused was recorded');
    } finally {
      db.close();
    }
  }

  it('disk full: refuses grants with UNAVAILABLE, renews held tokens, and resumes when space returns', async function () {
    const dir = mountFresh(['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs']);
    const held = await startHolding(dir);
    const filler = fill(dir);
    await checkOutage(held);
    fs.rmSync(filler);
    await checkRecovery(held, true);
  });

  it('read-only filesystem: refuses grants, renews held tokens, corrupts nothing; serves again once restarted on the repaired filesystem', async function () {
    const image = path.join(tempDir('headroom-diskfull-'), 'ext4.img');
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 16 * 1024 * 1024);
    execFileSync('mkfs.ext4', ['-q', image]);
    const dir = mountFresh(['-o', 'loop,errors=remount-ro', image]);
    const device = path.basename(execFileSync('findmnt', ['-no', 'SOURCE', dir], { encoding: 'utf8' }).trim());
    const held = await startHolding(dir);
    // What the kernel does on a disk error: ext4 turns the whole filesystem read-only under the open database.
    fs.writeFileSync(`/sys/fs/ext4/${device}/trigger_fs_error`, '1');
    await checkOutage(held);

    const dbPath = coordinator!.dbPath;
    clients!.close();
    await coordinator!.stop();
    execFileSync('umount', [unmount.pop()!]);
    // e2fsck exits 1 when it corrected the error the kernel recorded.
    try {
      execFileSync('e2fsck', ['-fy', image], { stdio: 'pipe' });
    } catch (e) {
      if ((e as { status?: number }).status !== 1) throw e;
    }
    execFileSync('mount', ['-o', 'loop', image, dir]);
    unmount.push(dir);
    await start(dbPath);
    assert.ok((await renew(clients!, held)).expiresUnixMs > Date.now(), 'the held token survived, restored');
    await checkRecovery(held, false);
  });
});
