/**
 * Proxmox obeys its token: a vzdump job (vzdump-process.ts, with vzdump's process structure and log) runs
 * the example hook against a real coordinator; a VM's copy runs in a real QEMU (qemu-storage-daemon on
 * the VM's QMP socket), a container's as tar | cstream | gzip under the job. Revoking the token of the
 * guest being backed up stops that guest's copy, vzdump logs the guest as failed with the reason, and
 * the next guest of the same job is backed up under its own token.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Clients, unary } from '../../../common/client/connection';
import type { v1 } from '../../../proto';
import { type RunningCoordinator, startCoordinator, tempDir } from '../../helpers/coordinator-process';
import { requireTool } from '../../helpers/require-tool';
import { connectPlain } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { MiB } from '../host-backup/fixture';
import { StorageDaemon } from '../host-backup/storage-daemon';
import {
  type InstalledHook,
  type RunningVzdump,
  type VzdumpGuest,
  installHook,
  killHolders,
  startVzdumpJob,
} from './vzdump-emulation';

const HOST = 'pve-1';
/** vzdump.conf's bwlimit, KiB/s: slow enough that the test revokes mid-copy. */
const BWLIMIT_KIB = 4096;

describe('vzdump obeys its token (the hook stops a guest whose token is revoked)', function () {
  this.timeout(120_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let hook: InstalledHook;
  let dir: string;
  let runDir: string;
  let vzdumpConf: string;
  const daemons: StorageDaemon[] = [];
  let vzdump: RunningVzdump | undefined;

  const activeTokens = async () =>
    (
      await unary<v1.ListTokensRequest, v1.ListTokensResponse__Output>(clients.admin.ListTokens.bind(clients.admin), {
        host: HOST,
      })
    ).active;
  const released = async (vm: string) =>
    (
      await unary<v1.ListHistoryRequest, v1.ListHistoryResponse__Output>(
        clients.admin.ListHistory.bind(clients.admin),
        { host: HOST, limit: 1000 },
      )
    ).events.filter((e) => e.vm === vm && e.type === 'HISTORY_EVENT_TYPE_RELEASED');

  /** A VM: a qemu-storage-daemon whose QMP socket is where Proxmox puts the VM's (RUN_DIR/VMID.qmp). */
  async function vm(vmid: number, size: number): Promise<VzdumpGuest> {
    const daemon = new StorageDaemon(path.join(dir, `vm${vmid}`), [{ name: 'disk0', size, filled: size }]);
    fs.mkdirSync(daemon.dir);
    daemons.push(daemon);
    await daemon.start();
    fs.symlinkSync(daemon.qmpSocket, path.join(runDir, `${vmid}.qmp`));
    return { vmid, vmtype: 'qemu', hostname: `vm${vmid}`, node: 'disk0' };
  }

  /** A container: a root directory of `size` random bytes (tar copies them as they are). */
  function container(vmid: number, size: number): VzdumpGuest {
    const rootDir = path.join(dir, `ct${vmid}`);
    fs.mkdirSync(rootDir);
    fs.writeFileSync(path.join(rootDir, 'data'), randomBytes(size));
    return { vmid, vmtype: 'lxc', hostname: `ct${vmid}`, rootDir };
  }

  function job(guests: VzdumpGuest[]): RunningVzdump {
    const dumpdir = path.join(dir, 'dump');
    fs.mkdirSync(dumpdir, { recursive: true });
    vzdump = startVzdumpJob({
      script: hook.script,
      job: { storage: 'local', dumpdir },
      qemuRunDir: runDir,
      vzdumpConf,
      guests,
    });
    return vzdump;
  }

  async function revokeWhenCopying(vmid: number, copying: RegExp): Promise<void> {
    await waitFor(() => copying.test(vzdump!.log()), 60_000, `the copy of ${vmid} running`);
    const token = (await activeTokens()).find((t) => t.vm === String(vmid));
    assert.ok(token, `a token is held for ${vmid}`);
    await unary(clients.admin.RevokeToken.bind(clients.admin), {
      tokenId: token.tokenId,
      reason: 'storage maintenance',
    });
  }

  before(async () => {
    requireTool('cstream', 'cstream');
    coordinator = await startCoordinator({ host: HOST });
    clients = connectPlain(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });
  beforeEach(() => {
    dir = tempDir('headroom-vzdump-revoke-');
    runDir = path.join(dir, 'qemu-server');
    fs.mkdirSync(runDir);
    vzdumpConf = path.join(dir, 'vzdump.conf');
    fs.writeFileSync(vzdumpConf, `bwlimit: ${BWLIMIT_KIB}\nionice: 5\n`);
    hook = installHook({
      HEADROOM_COORDINATOR: coordinator.address,
      HEADROOM_HOST: HOST,
      HEADROOM_QEMU_RUN_DIR: runDir,
      HEADROOM_VZDUMP_CONF: vzdumpConf,
    });
  });
  afterEach(async () => {
    if (vzdump) {
      try {
        process.kill(-vzdump.pid, 'SIGKILL');
      } catch {
        // ended
      }
    }
    vzdump = undefined;
    killHolders(hook.stateDir);
    for (const d of daemons.splice(0)) await d.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("cancels a VM's backup in its QEMU when its token is revoked; vzdump logs it failed and backs the next guest up", async () => {
    const guests = [await vm(101, 64 * MiB), container(102, 2 * MiB)];
    const run = job(guests);
    await revokeWhenCopying(101, /started backup task 'vzdump-101'/);
    const { code, log } = await run.done;
    assert.equal(code, 255, log);
    assert.match(log, /copy limited to bwlimit 4096 KiB\/s by QEMU's backup job speed/);
    assert.match(log, /ERROR: Backup of VM 101 failed - Operation canceled/);
    assert.match(
      log,
      /was lost while it was held: revoked by the coordinator: storage maintenance; cancelled 1 block job\(s\) in the QEMU of \S+101\.qmp/,
    );
    assert.match(log, /Finished Backup of VM 102/);
    assert.match(log, /Backup job finished with errors/);
    assert.match((await released('102'))[0]?.detail ?? '', /^success, /);
    assert.deepEqual(await activeTokens(), []);
  });

  it("cancels a VM's backup when the coordinator stays unreachable until the lease's fail-safe", async () => {
    // A coordinator of its own, to lose; a short lease, so that the fail-safe comes soon.
    const lost = await startCoordinator({ host: HOST });
    try {
      hook = installHook({
        HEADROOM_COORDINATOR: lost.address,
        HEADROOM_HOST: HOST,
        HEADROOM_QEMU_RUN_DIR: runDir,
        HEADROOM_VZDUMP_CONF: vzdumpConf,
        HEADROOM_TTL: '3s',
      });
      const run = job([await vm(301, 64 * MiB)]);
      await waitFor(() => /started backup task 'vzdump-301'/.test(run.log()), 60_000, 'the copy of 301 running');
      await lost.kill();
      const { code, log } = await run.done;
      assert.equal(code, 255, log);
      assert.match(log, /ERROR: Backup of VM 301 failed - Operation canceled/);
      assert.match(
        log,
        /was lost while it was held: could not renew the lease; stopped .* before it would expire .*; cancelled 1 block job\(s\) in the QEMU of \S+301\.qmp/,
      );
    } finally {
      await lost.kill();
    }
  });

  it("stops a container's tar when its token is revoked; vzdump logs it failed and backs the next guest up", async () => {
    const guests = [container(201, 64 * MiB), await vm(202, 2 * MiB)];
    const run = job(guests);
    await revokeWhenCopying(201, /creating vzdump archive '.*vzdump-lxc-201-/);
    const { code, log } = await run.done;
    assert.equal(code, 255, log);
    assert.match(log, /copy limited to bwlimit 4096 KiB\/s by cstream after tar .*; ionice 5 holds tar/);
    assert.match(
      log,
      /ERROR: Backup of VM 201 failed - command 'tar cpf - .*' failed: (got signal SIGTERM|exit code \d+)/,
    );
    assert.match(log, /revoked by the coordinator: storage maintenance; stopped what process \d+ ran: .*tar \(\d+\)/);
    assert.match(log, /Finished Backup of VM 202/);
    assert.match((await released('202'))[0]?.detail ?? '', /^success, /);
    assert.deepEqual(await activeTokens(), []);
  });
});
