/**
 * Watching a backup's copy inside QEMU from QEMU's own job counters (query-block-jobs), and host-backup's
 * load controller driven by the test: what the qmp and libvirt copy-control tests share.
 *
 * The bound on a limited job, between two reads of its offset: speed × the time between asking for the
 * first and receiving the second, plus one chunk (block-copy issues requests of up to 1 MiB without copy
 * offloading) and one slice of QEMU's rate limiter (it lets a 100 ms slice's worth go at once).
 */
import { strict as assert } from 'node:assert';
import { detectEnforcement } from '../../common/backup-run/budget/detect';
import type { RunningChild } from '../../common/backup-run/child-process';
import type { LoadCollector } from '../../common/backup-run/load-collector';
import { systemClock } from '../../common/util/clock';
import { formatRate } from '../../common/util/human';
import { createLogger } from '../../common/util/log';
import { DEFAULT_POLICY } from '../../coordinator/domain/policy';
import { CopyControlChannel } from '../../host-backup/copy-control-channel';
import { HostBudget } from '../../host-backup/host-budget';
import type { v1 } from '../../proto';
import { waitFor } from './wait';

const MiB = 1024 * 1024;
const CHUNK = 1 * MiB;

/** A backup job as query-block-jobs shows it. */
export interface QemuJob {
  device: string;
  type: string;
  offset: number;
  len: number;
  paused: boolean;
}

/** One read of the backup's job. */
export interface JobSample {
  offset: number;
  len: number;
  paused: boolean;
  /** When the query was sent and when its answer came (ms): QEMU read its counters in between. */
  sentAt: number;
  receivedAt: number;
}

/** query-block-jobs, however the test reaches QEMU's monitor. */
export type QueryBlockJobs = () => Promise<QemuJob[]>;

/** Reads the job `pick` chooses; undefined when there is none. */
export async function sampleJob(query: QueryBlockJobs, pick: (j: QemuJob) => boolean): Promise<JobSample | undefined> {
  const sentAt = Date.now();
  const job = (await query()).find(pick);
  return job && { offset: job.offset, len: job.len, paused: job.paused, sentAt, receivedAt: Date.now() };
}

/** formatRate's text as a regular expression. */
const escapedRate = (bytesPerSec: number) => formatRate(bytesPerSec).replace('.', '\\.');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads the job `n` times `everyMs` apart (it must run throughout). */
export async function samples(
  read: () => Promise<JobSample | undefined>,
  n: number,
  everyMs: number,
): Promise<JobSample[]> {
  const out: JobSample[] = [];
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(everyMs);
    const s = await read();
    assert.ok(s, 'the backup job ran throughout');
    out.push(s);
  }
  return out;
}

/** Fails when the job copied more between two reads than `speed` allows (the module header's bound). */
export function assertWithin(list: JobSample[], speed: number): void {
  for (let i = 1; i < list.length; i++) {
    const [a, b] = [list[i - 1], list[i]];
    const copied = b.offset - a.offset;
    const allowed = (speed * (b.receivedAt - a.sentAt)) / 1000 + CHUNK + speed / 10;
    assert.ok(copied <= allowed, `copied ${copied} bytes in ${b.receivedAt - a.sentAt} ms at ${speed} B/s`);
  }
  assert.ok(list[list.length - 1].offset > list[0].offset, 'the job copied while limited');
}

/** The copy's rate from the first to the last sample, bytes/s (a figure to report, not to assert). */
export function rateOf(list: JobSample[]): number {
  const [a, b] = [list[0], list[list.length - 1]];
  return ((b.offset - a.offset) * 1000) / (b.receivedAt - a.sentAt);
}

export interface DrivenBudget {
  /** What the copying child follows (its env()). */
  channel: CopyControlChannel;
  /** Makes the host's disk look busy (the controller pauses the copy) or idle (it resumes). */
  setBusy(busy: boolean): void;
  /** Whether host-backup has said a line matching `pattern`. */
  said(pattern: RegExp): boolean;
  /** Hands the budget the child, under the token, and waits until the budget's speed is applied. */
  start(child: RunningChild): Promise<void>;
  /** Stops the child as host-backup does at the end of a run, and the budget with it. */
  stop(child: RunningChild): Promise<void>;
  close(): void;
}

/**
 * host-backup's HostBudget as host-backup builds it, reaching the copy through a channel of its own, under a
 * HYPERVISOR token for `vm` whose budget limits I/O to `ioBytesPerSec`, with the host's
 * load as the test says: a disk busy beyond the pause threshold or idle. CPU thresholds are off, so the
 * other work on the machine never pauses the copy under test.
 */
export function drivenBudget(vm: string, ioBytesPerSec: number): DrivenBudget {
  let busy = false;
  const channel = CopyControlChannel.create();
  const collector: LoadCollector = {
    sample: async () => ({
      cpuPercent: 0,
      diskReadBytesPerSec: 0,
      diskWriteBytesPerSec: busy ? 200 * MiB : 0,
      backupCpuPercent: 0,
      backupIoBytesPerSec: 0,
    }),
  };
  const policy = {
    ...DEFAULT_POLICY,
    reportIntervalMs: 200,
    budgetDwellMs: 0,
    throttleAboveCpuPercent: 0,
    pauseAboveCpuPercent: 0,
    throttleAboveIoBytesPerSec: 0,
    pauseAboveIoBytesPerSec: 100 * MiB,
    resumeBelowIoBytesPerSec: 10 * MiB,
  } as unknown as v1.Policy__Output;
  const events: string[] = [];
  const log = createLogger({ level: 'silent' });
  const said = (pattern: RegExp) => events.some((text) => pattern.test(text));
  const budget = new HostBudget({
    host: 'host-a',
    mechanism: detectEnforcement({ mode: 'auto', log }),
    limits: { cpuPercent: 0, ioBytesPerSec: 0 },
    fetchPolicy: async () => policy,
    clock: systemClock,
    now: Date.now,
    formatTime: () => 'now',
    log,
    emit: (_event, _data, text) => events.push(text),
    copy: { control: channel, speedBy: "QEMU's job speed", pauseBy: "QEMU's block-job-pause" },
    collector: () => collector,
  });
  const token = {
    tokenId: 'token-1',
    fencing: 1,
    kind: 'TOKEN_KIND_HYPERVISOR',
    host: 'host-a',
    vm,
    budget: { cpuPercent: 0, ioBytesPerSec },
    slot: { startUnixMs: Date.now(), expectedEndUnixMs: Date.now() + 3_600_000, windowEndUnixMs: 0 },
  } as unknown as v1.Token__Output;
  return {
    channel,
    setBusy: (b) => (busy = b),
    said,
    async start(child) {
      budget.started(child, token);
      const applied = new RegExp(`copy limited to ${escapedRate(ioBytesPerSec)} by QEMU's job speed`);
      await waitFor(() => said(applied), 30_000, 'the budget applied');
    },
    async stop(child) {
      budget.stopping();
      await child.stop(10_000);
      await budget.ended();
    },
    close: () => channel.close(),
  };
}

/**
 * Makes the host busy until the load controller has paused the job (its offset standing still across
 * reads), then calm until it has resumed it at `speed`: the samples of both phases.
 */
export async function pauseAndResume(
  d: DrivenBudget,
  read: () => Promise<JobSample | undefined>,
  speed: number,
): Promise<{ paused: JobSample[]; resumed: JobSample[] }> {
  d.setBusy(true);
  await waitFor(() => d.said(/copy paused by the load controller: .*\(QEMU's block-job-pause\)/), 30_000, 'pause');
  // block-job-pause returns at once; the job pauses once its requests in flight are done.
  await waitFor(async () => (await read())?.paused === true, 30_000, 'the job paused');
  const paused = await samples(read, 4, 500);
  assert.ok(
    paused.every((s) => s.paused && s.offset === paused[0].offset),
    'nothing copied while paused',
  );

  d.setBusy(false);
  const limitedAgain = new RegExp(
    `copy limited to ${formatRate(speed).replace('.', '\\.')} by QEMU's job speed \\(the load controller: `,
  );
  await waitFor(() => d.said(limitedAgain), 30_000, 'resume');
  const resumed = await samples(read, 3, 500);
  assert.ok(resumed.every((s) => !s.paused));
  assertWithin(resumed, speed);
  return { paused, resumed };
}
