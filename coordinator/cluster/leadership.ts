/**
 * The members' election, through etcd (the etcd3 client's lease-backed Election): each member campaigns
 * with the address its coordination is served on; the one elected leads until its lease lapses (it died,
 * hung past the TTL, or lost etcd) or it resigns after a failed commit. Every member also follows who
 * leads, so that its front door (forwarder.ts) knows where to send calls.
 */
import type { Campaign, Election, Etcd3, Watcher } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { LeaderGuard } from './etcd-store';

export interface LeadershipOptions {
  client: Etcd3;
  /** The cluster's key prefix, ending in '/'. */
  prefix: string;
  /** What this member proclaims when it leads: where its coordination is served. */
  address: string;
  /** The election lease's TTL, seconds: how long a dead or hung leader keeps the cluster waiting. */
  ttlSeconds: number;
  log: Logger;
}

export interface LeadershipHandlers {
  /** This member leads from now on: its commits are guarded by `guard`. */
  elected(guard: LeaderGuard): void;
  /** It no longer does (its lease lapsed or it resigned): stop committing and serving at once. */
  deposed(reason: string): void;
}

/** How long a member waits before it campaigns again after its campaign failed (etcd unreachable). */
const RETRY_MS = 1_000;
/** How often a member reads who leads besides the watch. */
const FOLLOW_POLL_MS = 1_000;

export class Leadership {
  private readonly election: Election;
  private campaign: Campaign | undefined;
  private watcher: Watcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private leaderValue: string | undefined;
  private stopped = false;
  private leading = false;
  private retry: NodeJS.Timeout | undefined;
  private readonly leaderListeners = new Set<(address: string | undefined) => void>();

  constructor(
    private readonly options: LeadershipOptions,
    private readonly handlers: LeadershipHandlers,
  ) {
    this.election = options.client.namespace(options.prefix).election('leader', options.ttlSeconds);
  }

  /** Where the leader serves, as it proclaimed; undefined while none is known. */
  get leader(): string | undefined {
    return this.leaderValue;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  onLeaderChange(listener: (address: string | undefined) => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }

  start(): void {
    this.observe();
    this.run();
  }

  /** Gives up leading after a failed commit (the state in memory may be ahead of etcd), and campaigns again. */
  resign(reason: string): void {
    const campaign = this.campaign;
    if (!campaign) return;
    this.lose(campaign, reason);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.poll);
    const campaign = this.campaign;
    this.campaign = undefined;
    if (this.leading) {
      this.leading = false;
      this.handlers.deposed('the member is stopping');
    }
    await Promise.all([campaign?.resign().catch(() => undefined), this.watcher?.cancel().catch(() => undefined)]);
  }

  private run(): void {
    if (this.stopped) return;
    const { log, address } = this.options;
    const campaign = this.election.campaign(address);
    this.campaign = campaign;
    campaign.on('error', (error) => {
      if (this.campaign !== campaign) return;
      log.warn('election: campaign failed', { error });
      this.lose(campaign, `its election lease is lost: ${error.message}`);
    });
    campaign.on('elected', () => {
      if (this.campaign !== campaign || this.stopped) return;
      this.guardOf(campaign).then(
        (guard) => {
          if (this.campaign !== campaign || this.stopped) return;
          this.leading = true;
          log.info('elected leader of the cluster', { address });
          this.handlers.elected(guard);
        },
        (error: Error) => this.lose(campaign, `its election key could not be read: ${error.message}`),
      );
    });
  }

  /** Ends this campaign (telling the handlers if it led) and starts another after a pause. */
  private lose(campaign: Campaign, reason: string): void {
    if (this.campaign !== campaign) return;
    this.campaign = undefined;
    campaign.resign().catch(() => undefined);
    if (this.leading) {
      this.leading = false;
      this.options.log.warn('no longer the leader', { reason });
      this.handlers.deposed(reason);
    }
    this.retry = setTimeout(() => this.run(), RETRY_MS);
  }

  private async guardOf(campaign: Campaign): Promise<LeaderGuard> {
    const key = await campaign.getCampaignKey();
    const result = await this.options.client.get(key).exec();
    const kv = result.kvs[0];
    if (!kv) throw new Error(`election key ${key} is gone`);
    return { key, createRevision: String(kv.create_revision) };
  }

  /**
   * Follows who leads: the candidate key created first. Read again at every change under the election's
   * prefix (a watch) and every FOLLOW_POLL_MS besides, since a watch can miss its events while it
   * reconnects. (etcd3's ElectionObserver is not used: when several candidates appear in one watch
   * event batch it takes the last one as the leader.)
   */
  private observe(): void {
    const { client, prefix } = this.options;
    const candidates = `${prefix}election/leader/`;
    const read = async () => {
      const result = await client
        .getAll()
        .prefix(candidates)
        .sort('Create', 'Ascend')
        .limit(1)
        .options({ deadline: Date.now() + FOLLOW_POLL_MS * 2 })
        .exec();
      this.tell(result.kvs[0]?.value.toString());
    };
    const reread = () =>
      read().catch((error: Error) => this.options.log.debug('election: cannot read the leader', { error }));
    void reread();
    this.poll = setInterval(reread, FOLLOW_POLL_MS);
    client
      .watch()
      .prefix(candidates)
      .create()
      .then(
        (watcher) => {
          if (this.stopped) return void watcher.cancel();
          this.watcher = watcher;
          watcher.on('data', reread);
          watcher.on('connected', reread);
          watcher.on('error', (error) => this.options.log.debug('election: watch failed', { error }));
        },
        (error: Error) => this.options.log.warn('election: cannot watch the leader, polling only', { error }),
      );
  }

  private tell(value: string | undefined): void {
    if (value === this.leaderValue) return;
    this.leaderValue = value;
    for (const l of this.leaderListeners) l(value);
  }
}
