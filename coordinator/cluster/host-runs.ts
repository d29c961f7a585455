/**
 * The backup runs of every member, to the leader's AdminService (StartBackup, CancelBackup, ListBackupRuns),
 * through etcd: each member runs its own host's hypervisor backups (its BackupRunner, member.ts) and
 * publishes its runs under `runs/<host>`, tied to its registration lease; the leader lists every host's from
 * those keys. A start or cancel reaches the member of the VM's host as a call key `backup-calls/<host>/<id>`
 * (under a short lease of the leader's), which that member alone watches; it acts at once and puts its answer
 * under `backup-answers/<id>`, which the leader waits for. So a call works through any member's front door,
 * whoever leads, and is authorized at the leader like every other call; etcd, which members reach anyway, is
 * the only path between them.
 */
import { randomUUID } from 'node:crypto';
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from '../../common/util/log';
import { BackupRunConflictError, BackupRunNotFoundError, BackupRunnerUnavailableError } from '../domain/errors';
import type { BackupRunView, BackupRunner, BackupRuns } from '../hypervisor-jobs/backup-runner';
import type { Registration } from './cluster-view';
import type { ClusterHypervisorJobs } from './host-jobs';
import { followPrefix, keepPublished } from './member-keys';

type Call = { op: 'start'; vm: string; full: boolean } | { op: 'cancel'; vm: string };

type Answer =
  | { run: BackupRunView }
  | { conflict: { vm: string; runId: string } }
  | { notFound: { vm: string } }
  | { unavailable: string }
  | { failed: string };

/** How long the leader waits for a member's answer: it acts at once, so only a member out of reach takes this. */
const ANSWER_TIMEOUT_MS = 10_000;
/** The call key's lease: gone soon after an unanswered call, whatever happened to the leader that put it. */
const CALL_TTL_S = 30;

const runsPrefix = (prefix: string) => `${prefix}runs/`;
const callsPrefix = (prefix: string, host: string) => `${prefix}backup-calls/${host}/`;
const answerKey = (prefix: string, id: string) => `${prefix}backup-answers/${id}`;

/**
 * The member side: publishes its runner's runs (call `changed()` whenever they change) and answers the
 * leader's calls for its host, from when etcd can be watched on.
 */
export function serveBackupRuns(o: {
  client: Etcd3;
  registration: Pick<Registration, 'put' | 'onRegistered'>;
  prefix: string;
  host: string;
  runner: Pick<BackupRunner, 'start' | 'cancel' | 'list'>;
  log: Logger;
}): { changed(): Promise<void>; stop(): Promise<void> } {
  const published = keepPublished(o.registration, "this host's backup runs", o.log);
  const changed = () => published.publish(`${runsPrefix(o.prefix)}${o.host}`, JSON.stringify(o.runner.list()));
  const calls = callsPrefix(o.prefix, o.host);
  const answer = async (kv: IKeyValue) => {
    const key = kv.key.toString();
    // Claimed by deleting it: a call the leader gave up on (its lease revoked) is gone, and none is acted on twice.
    const claim = await o.client.if(key, 'Version', '>', 0).then(o.client.delete().key(key)).commit();
    if (!claim.succeeded) return;
    const answered = act(o.runner, JSON.parse(kv.value.toString()) as Call);
    // The runs as changed are in etcd before the answer, so a caller that lists them next finds its run.
    await changed();
    await o.registration.put(answerKey(o.prefix, key.slice(calls.length)), JSON.stringify(answered));
  };
  let stopped = false;
  // Calls put before this member watched were the leader's to give up on: only new ones are answered.
  const watching = o.client
    .watch()
    .prefix(calls)
    .create()
    .then(
      (watcher) => {
        if (stopped) return void watcher.cancel().catch(() => undefined);
        watcher.on('put', (kv) =>
          answer(kv).catch((error: Error) =>
            o.log.warn("cannot answer the leader's backup call", { key: kv.key.toString(), error }),
          ),
        );
        watcher.on('error', (error) => o.log.warn("cannot follow the leader's backup calls", { error }));
        return watcher;
      },
      (error: Error) => void o.log.warn("cannot follow the leader's backup calls", { error }),
    );
  void changed();
  return {
    changed,
    async stop() {
      stopped = true;
      published.stop();
      await (await watching)?.cancel().catch(() => undefined);
    },
  };
}

function act(runner: Pick<BackupRunner, 'start' | 'cancel'>, call: Call): Answer {
  try {
    return { run: call.op === 'start' ? runner.start(call.vm, { full: call.full }) : runner.cancel(call.vm) };
  } catch (e) {
    if (e instanceof BackupRunConflictError) return { conflict: { vm: e.vm, runId: e.runId } };
    if (e instanceof BackupRunNotFoundError) return { notFound: { vm: e.vm } };
    if (e instanceof BackupRunnerUnavailableError) return { unavailable: e.message };
    return { failed: (e as Error).message };
  }
}

/** The leader side: every member's runs, and its starts and cancels sent to the member of the VM's host. */
export class ClusterBackupRuns implements BackupRuns {
  private readonly runs = new Map<string, BackupRunView[]>();
  private unfollow: (() => Promise<void>) | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly prefix: string,
    private readonly jobs: Pick<ClusterHypervisorJobs, 'hostRunning'>,
    /** A VM's identity, as the leader resolves names (the job lists VMs by the names written). */
    private readonly resolve: (vm: string) => string,
    private readonly log: Logger,
  ) {}

  /** @throws when etcd cannot be read */
  async follow(): Promise<void> {
    this.unfollow = await followPrefix(
      this.client,
      runsPrefix(this.prefix),
      (host, value) => {
        if (value === undefined) this.runs.delete(host);
        else this.runs.set(host, JSON.parse(value) as BackupRunView[]);
      },
      "the members' backup runs",
      this.log,
    );
  }

  async stop(): Promise<void> {
    await this.unfollow?.();
  }

  /** @throws BackupRunnerUnavailableError when no member runs the VM; the member's own errors as its runner throws them */
  start(vm: string, options: { full?: boolean } = {}): Promise<BackupRunView> {
    const host = this.jobs.hostRunning(vm, this.resolve);
    if (host === undefined)
      throw new BackupRunnerUnavailableError(
        `no member of the cluster has a hypervisorJobs entry with a driver that lists VM ${vm} (or its member is down)`,
      );
    return this.call(host, { op: 'start', vm, full: options.full ?? false });
  }

  /** The member whose run of the VM is running, else the member that runs the VM. @throws BackupRunNotFoundError */
  cancel(vm: string): Promise<BackupRunView> {
    const running = [...this.runs].find(([, runs]) => runs.some((r) => r.vm === vm && r.state === 'RUNNING'));
    const host = running?.[0] ?? this.jobs.hostRunning(vm, this.resolve);
    if (host === undefined) throw new BackupRunNotFoundError(vm);
    return this.call(host, { op: 'cancel', vm });
  }

  /** Every member's runs, newest first. */
  list(vm?: string): BackupRunView[] {
    return [...this.runs.values()]
      .flat()
      .filter((r) => vm === undefined || r.vm === vm)
      .sort((a, b) => b.startedAtMs - a.startedAtMs);
  }

  private async call(host: string, call: Call): Promise<BackupRunView> {
    const id = randomUUID();
    const answerAt = answerKey(this.prefix, id);
    // Watching first: the answer may come before the put returns.
    const watcher = await this.client.watch().key(answerAt).create();
    const lease = this.client.lease(CALL_TTL_S, { autoKeepAlive: false });
    let timer: NodeJS.Timeout | undefined;
    try {
      const answered = new Promise<Answer>((resolve) =>
        watcher.on('put', (kv) => resolve(JSON.parse(kv.value.toString()) as Answer)),
      );
      await lease
        .put(`${callsPrefix(this.prefix, host)}${id}`)
        .value(JSON.stringify(call))
        .exec();
      const answer = await Promise.race([
        answered,
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ANSWER_TIMEOUT_MS))),
      ]);
      if (answer === undefined)
        throw new BackupRunnerUnavailableError(
          `the member of host ${host} did not answer within ${ANSWER_TIMEOUT_MS / 1000} s (it may be cut off from etcd, or have acted late): see backup runs, and call again`,
        );
      void this.client
        .delete()
        .key(answerAt)
        .catch(() => undefined);
      if ('run' in answer) return answer.run;
      if ('conflict' in answer) throw new BackupRunConflictError(answer.conflict.vm, answer.conflict.runId);
      if ('notFound' in answer) throw new BackupRunNotFoundError(answer.notFound.vm);
      if ('unavailable' in answer) throw new BackupRunnerUnavailableError(answer.unavailable);
      throw new Error(`the member of host ${host} could not act on the backup: ${answer.failed}`);
    } finally {
      clearTimeout(timer);
      void watcher.cancel().catch(() => undefined);
      void lease.revoke().catch(() => undefined);
    }
  }
}
