/**
 * The coordinator's side of the quiesce protocol: asks the agent of a HYPERVISOR token's VM to freeze its
 * applications (FreezeCommand) and to thaw them (ThawCommand), waits for the agent's QuiesceReport, and
 * records what became of each freeze in the history. A guest still frozen when its token ends (release,
 * expiry, revoke) is told to thaw. The agent's own timer bounds every freeze: nothing here is needed for
 * the guest to thaw, only for it to thaw sooner.
 */
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { LessorEvent, QuiesceEvent } from '../domain/events';
import type { Lease } from '../domain/lease';
import type * as v1 from '../../proto/generated/headroom/v1';
import { formatDuration } from '../../common/util/duration';

/** QuiesceRequest.timeout_ms 0. */
export const DEFAULT_QUIESCE_TIMEOUT_MS = 30_000;
/** How long a Thaw waits for the agent's answer. */
export const DEFAULT_THAW_TIMEOUT_MS = 30_000;

/** The agent registry's way to a VM's session. False: the VM has no session, or the send failed. */
export interface CommandSink {
  push(vm: string, action: Omit<v1.Command, 'commandId'>): boolean;
}

export interface QuiesceBrokerDeps {
  agents: CommandSink;
  /** Appends to the history (Coordinator.record). */
  record(event: QuiesceEvent): Promise<void>;
  /** The active lease with this id: an auto-thaw reported after a coordinator restart is recorded against it. */
  lease(tokenId: string): Lease | undefined;
  clock: Clock;
  log: Logger;
  thawTimeoutMs?: number;
}

export type QuiesceState = 'FROZEN' | 'FAILED' | 'THAWED';

/** An agent's QuiesceReport, its state as the broker names it (rpc/agent-service.ts converts it). */
export type QuiesceReport = Omit<v1.QuiesceReport__Output, 'state'> & { state: QuiesceState };

export interface QuiesceAnswer {
  state: 'FROZEN' | 'FAILED';
  message: string;
  hooks: v1.HookResult[];
  holdMs: number;
}

export interface ThawAnswer {
  state: 'THAWED' | 'FAILED';
  message: string;
  hooks: v1.HookResult[];
  autoThawed: boolean;
  frozenMs: number;
}

/** One token's freeze, from the FreezeCommand until its token ended and the guest thawed. */
interface Freeze {
  lease: Lease;
  /** When the FreezeCommand was sent: the agent's bound counts from a little later. */
  sentAt: number;
  /** The FROZEN answer, repeated to a Quiesce that asks again. */
  frozen?: QuiesceAnswer;
  /** How the guest thawed, once it did. */
  thawed?: ThawAnswer;
}

interface Waiter {
  want: 'freeze' | 'thaw';
  /** undefined: no answer (timed out, or the coordinator is stopping). */
  settle(report: QuiesceReport | undefined): void;
}

function names(hooks: readonly v1.HookResult[]): string[] {
  return hooks.map((h) => (h.ok ? h.name! : `${h.name} (failed)`));
}

export class QuiesceBroker {
  private readonly freezes = new Map<string, Freeze>();
  /** The one Quiesce or Thaw of a token waiting for the agent's answer. */
  private readonly waiters = new Map<string, Waiter>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly deps: QuiesceBrokerDeps) {}

  /** Asks the lease's VM to freeze; answers FROZEN, or FAILED with the reason (also when no agent is connected). */
  async quiesce(lease: Lease, holdMs: number, timeoutMs: number): Promise<QuiesceAnswer> {
    const { tokenId, vm } = lease;
    const timeout = timeoutMs || DEFAULT_QUIESCE_TIMEOUT_MS;
    if (this.waiters.has(tokenId)) return this.failed(lease, 'a quiesce or thaw of this token is already under way');
    const existing = this.freezes.get(tokenId);
    // A caller that lost the answer and asks again gets it again: the guest is still frozen.
    if (existing?.frozen && !existing.thawed) return existing.frozen;
    const freeze: Freeze = { lease, sentAt: this.deps.clock.now() };
    this.freezes.set(tokenId, freeze);
    if (!this.deps.agents.push(vm, { freeze: { tokenId, holdMs } })) {
      this.freezes.delete(tokenId);
      return this.failed(lease, `the agent of VM ${vm} is not connected`);
    }
    const report = await this.wait(tokenId, 'freeze', timeout);
    if (!report) {
      // It may yet freeze: the thaw makes it let go at once rather than at its bound.
      this.deps.agents.push(vm, { thaw: { tokenId } });
      return this.failed(
        lease,
        `no answer from the agent of VM ${vm} within ${formatDuration(timeout)}; it was told to thaw`,
      );
    }
    if (report.state !== 'FROZEN') {
      this.freezes.delete(tokenId);
      return this.failed(lease, `the guest could not quiesce: ${report.message || 'no reason given'}`, report.hooks);
    }
    freeze.frozen = { state: 'FROZEN', message: report.message, hooks: report.hooks, holdMs: report.holdMs };
    this.deps.log.info('guest quiesced', { token: tokenId, vm, holdMs: report.holdMs, hooks: names(report.hooks) });
    await this.note({
      type: 'quiesced',
      at: this.deps.clock.now(),
      lease,
      hooks: names(report.hooks),
      holdMs: report.holdMs,
    });
    return freeze.frozen;
  }

  /** Asks the lease's VM to thaw what its Quiesce froze. */
  async thaw(lease: Lease): Promise<ThawAnswer> {
    const { tokenId, vm } = lease;
    const freeze = this.freezes.get(tokenId);
    const refuse = (message: string, autoThawed = false, frozenMs = 0): ThawAnswer => ({
      state: 'FAILED',
      message,
      hooks: [],
      autoThawed,
      frozenMs,
    });
    if (!freeze) return refuse("nothing to thaw: this token's guest is not quiesced");
    if (freeze.thawed) return freeze.thawed;
    if (this.waiters.has(tokenId)) return refuse('a quiesce or thaw of this token is already under way');
    const since = this.deps.clock.now() - freeze.sentAt;
    const holdMs = freeze.frozen?.holdMs ?? 0;
    if (!this.deps.agents.push(vm, { thaw: { tokenId } })) {
      const passed = holdMs > 0 && since >= holdMs;
      return refuse(
        `the agent of VM ${vm} is not connected: ${passed ? 'its bound has passed, so it thawed by itself' : `it thaws by itself within ${formatDuration(holdMs - since)}`}`,
        passed,
        passed ? holdMs : 0,
      );
    }
    const report = await this.wait(tokenId, 'thaw', this.deps.thawTimeoutMs ?? DEFAULT_THAW_TIMEOUT_MS);
    if (!report)
      return refuse(
        `no answer from the agent of VM ${vm}: it thaws by itself at its bound (${formatDuration(holdMs)})`,
      );
    return this.thawed(freeze, report);
  }

  /**
   * A QuiesceReport from `vm`'s session: the answer a Quiesce or Thaw waits for, or word that the agent
   * thawed by itself. False when it is about no freeze of this VM (then it is ignored).
   */
  report(vm: string, report: QuiesceReport): boolean {
    const freeze = this.freezes.get(report.tokenId);
    if (!freeze) {
      // Frozen under a coordinator that has since restarted: its thaw still belongs in the token's history.
      const lease = this.deps.lease(report.tokenId);
      if (report.state !== 'THAWED' || lease?.vm !== vm || lease.kind !== 'HYPERVISOR') return false;
      void this.thawed({ lease, sentAt: 0 }, report);
      return true;
    }
    if (freeze.lease.vm !== vm) return false;
    const waiter = this.waiters.get(report.tokenId);
    const answers = waiter && (waiter.want === 'freeze' ? report.state !== 'THAWED' : report.state !== 'FROZEN');
    if (waiter && answers) {
      waiter.settle(report);
      return true;
    }
    if (report.state === 'THAWED') void this.thawed(freeze, report);
    else if (report.state === 'FROZEN') {
      // Past the Quiesce's timeout: the thaw sent then is on its way.
      this.deps.log.warn('guest froze after its quiesce was given up; it was told to thaw', {
        token: report.tokenId,
        vm,
      });
      void this.note({
        type: 'quiesced',
        at: this.deps.clock.now(),
        lease: freeze.lease,
        hooks: names(report.hooks),
        holdMs: report.holdMs,
      });
    } else
      this.deps.log.warn('agent reports a failed quiesce no one waits for', {
        token: report.tokenId,
        vm,
        message: report.message,
      });
    return true;
  }

  /** Coordinator.onCommitted: a token that ends while its guest is (or is being) frozen has the guest thawed. */
  readonly onCommitted = (events: readonly LessorEvent[]): void => {
    for (const e of events) {
      if (e.type !== 'released' && e.type !== 'expired' && e.type !== 'revoked') continue;
      const freeze = this.freezes.get(e.lease.tokenId);
      if (!freeze) continue;
      if (freeze.thawed) {
        this.freezes.delete(e.lease.tokenId);
        continue;
      }
      this.deps.log.info('token ended while its guest was frozen: telling the agent to thaw', {
        token: e.lease.tokenId,
        vm: e.lease.vm,
        ended: e.type,
      });
      this.deps.agents.push(e.lease.vm, { thaw: { tokenId: e.lease.tokenId } });
      // Kept for the agent's THAWED report until the bound (and an answer's time) has surely passed.
      const bound =
        (freeze.frozen?.holdMs || DEFAULT_QUIESCE_TIMEOUT_MS) + (this.deps.thawTimeoutMs ?? DEFAULT_THAW_TIMEOUT_MS);
      this.later(() => {
        if (this.freezes.get(e.lease.tokenId) === freeze) this.freezes.delete(e.lease.tokenId);
      }, bound);
    }
  };

  /** Ends every wait as unanswered (the coordinator is stopping) and every timer. */
  stop(): void {
    for (const w of [...this.waiters.values()]) w.settle(undefined);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async thawed(freeze: Freeze, report: QuiesceReport): Promise<ThawAnswer> {
    const answer: ThawAnswer = {
      state: report.state === 'THAWED' ? 'THAWED' : 'FAILED',
      message: report.message,
      hooks: report.hooks,
      autoThawed: report.autoThawed,
      frozenMs: report.frozenMs,
    };
    freeze.thawed = answer;
    const { tokenId, vm } = freeze.lease;
    this.deps.log[report.autoThawed ? 'warn' : 'info'](report.autoThawed ? 'guest thawed by itself' : 'guest thawed', {
      token: tokenId,
      vm,
      frozenMs: report.frozenMs,
      ...(answer.state === 'FAILED' ? { problem: report.message } : {}),
    });
    const message = answer.state === 'FAILED' ? `a thaw hook failed: ${report.message}` : report.message;
    await this.note({
      type: 'thawed',
      at: this.deps.clock.now(),
      lease: freeze.lease,
      autoThawed: report.autoThawed,
      frozenMs: report.frozenMs,
      message,
    });
    return answer;
  }

  private async failed(lease: Lease, reason: string, hooks: v1.HookResult[] = []): Promise<QuiesceAnswer> {
    this.deps.log.warn('guest not quiesced', { token: lease.tokenId, vm: lease.vm, reason });
    await this.note({ type: 'quiesce-failed', at: this.deps.clock.now(), lease, reason });
    return { state: 'FAILED', message: reason, hooks, holdMs: 0 };
  }

  /** Records in the history; a store that cannot be written loses the record, not the answer. */
  private async note(event: QuiesceEvent): Promise<void> {
    try {
      await this.deps.record(event);
    } catch (err) {
      this.deps.log.warn('could not record a quiesce event in the history', {
        type: event.type,
        token: event.lease.tokenId,
        error: err as Error,
      });
    }
  }

  private wait(tokenId: string, want: Waiter['want'], timeoutMs: number): Promise<QuiesceReport | undefined> {
    return new Promise((resolve) => {
      const timer = this.later(() => this.waiters.get(tokenId)?.settle(undefined), timeoutMs);
      this.waiters.set(tokenId, {
        want,
        settle: (report) => {
          clearTimeout(timer);
          this.timers.delete(timer);
          this.waiters.delete(tokenId);
          resolve(report);
        },
      });
    });
  }

  private later(fn: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }
}
