import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import {
  CopyControlChannel,
  CopyControlError,
  followCopyControl,
  readCopyState,
  tighterSpeed,
} from '../../../host-backup/copy-control-channel';
import type { CopyControl } from '../../../host-backup/hypervisor/copy-control';
import { captureLog } from '../common/backup-run/guarded-run-fakes';

/** A copy that records what it was told, and may refuse. */
class FakeCopy implements CopyControl {
  calls: string[] = [];
  refuse?: string;
  done = 0;
  async setSpeed(b: number) {
    if (this.refuse) throw new Error(this.refuse);
    this.calls.push(`speed ${b}`);
  }
  async pause() {
    this.calls.push('pause');
  }
  async resume() {
    this.calls.push('resume');
  }
  async progress() {
    return { done: this.done, total: 100 };
  }
}

describe('host-backup: copy control channel (host-backup → the child that drives the copy)', () => {
  let channel: CopyControlChannel;
  let stop: (() => Promise<void>) | undefined;
  const follow = (copy: CopyControl, cap = 0, speed = 0) =>
    (stop = followCopyControl({
      dir: channel.dir,
      control: copy,
      inForce: { speed, paused: false },
      capBytesPerSec: cap,
      log: captureLog().log,
      pollMs: 5,
    }));

  beforeEach(() => {
    channel = CopyControlChannel.create(2_000);
  });
  afterEach(async () => {
    await stop?.();
    stop = undefined;
    channel.close();
  });

  it('carries speed, pause and resume to the copy, each resolved once applied, never above the child’s own cap', async () => {
    const copy = new FakeCopy();
    follow(copy, 5_000_000);
    await channel.setSpeed(8_000_000);
    await channel.pause();
    await channel.setSpeed(1_000_000);
    await channel.resume();
    await channel.setSpeed(0);
    assert.deepEqual(copy.calls, ['speed 5000000', 'pause', 'speed 1000000', 'resume', 'speed 5000000']);
    copy.done = 42;
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(await channel.progress(), { done: 42, total: 100 });
  });

  it('the state written before the child follows is what the child starts its copy with', () => {
    void channel.setSpeed(3_000_000).catch(() => {});
    assert.equal(readCopyState(channel.dir)?.speed, 3_000_000);
    assert.equal(readCopyState(undefined), undefined);
    assert.equal(tighterSpeed(0, 7), 7);
    assert.equal(tighterSpeed(9, 7), 7);
  });

  it('rejects with what the hypervisor refused, and when the child never answers', async () => {
    const copy = new FakeCopy();
    copy.refuse = 'QMP block-job-set-speed failed: gone';
    follow(copy);
    await assert.rejects(channel.setSpeed(1), (e: Error) => e instanceof CopyControlError && /gone/.test(e.message));
    await stop!();
    stop = undefined;
    const slow = CopyControlChannel.create(50);
    try {
      await assert.rejects(slow.pause(), /has not applied it within 0\.05 s/);
    } finally {
      slow.close();
    }
    assert.equal(fs.existsSync(slow.dir), false);
  });
});
