/**
 * Who the agents are and which are connected: their last hello (persisted), their last load and what they
 * report enforcing on their backups (in memory, replaced by each report) and the session to push commands
 * to. Pushes revoke and grant notices when the coordinator commits them, and budget changes when a VM's
 * load report moves the budget controller (domain/budget-controller.ts).
 *
 * Only GUEST backups are controlled: a HYPERVISOR backup loads the host, whose metrics the coordinator does
 * not collect yet. The same controller can drive them from host metrics once it does.
 */
import type { Logger } from '../../common/util/log';
import {
  type BudgetLevel,
  type BudgetState,
  decideBudget,
  describeInstruction,
  grantedBudgetState,
  unknownBudgetState,
} from '../domain/budget-controller';
import type { LessorEvent } from '../domain/events';
import type { Lease } from '../domain/lease';
import type { IdSource } from '../domain/lessor';
import type { HostPolicy } from '../domain/policy';
import type { AgentRecord, Store } from '../store/store';
import type * as v1 from '../../proto/generated/headroom/v1';

/** The write side of one agent's session stream. */
export interface AgentSession {
  send(message: v1.CoordinatorMessage): void;
  /** Ends the session, e.g. because the same VM connected again. */
  close(reason: string): void;
}

export interface AgentState {
  record: AgentRecord;
  connected: boolean;
  lastLoad?: v1.LoadReport;
  /** What the agent last reported enforcing on each of its running backups, by token id. */
  budgets: Map<string, v1.BudgetReport>;
}

/** A budget the controller told an agent to enforce on one of its backups, and why. */
export interface BudgetChange {
  lease: Lease;
  at: number;
  level: BudgetLevel;
  reason: string;
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentState>();
  private readonly sessions = new Map<string, AgentSession>();
  /** The budget controller's state of each running GUEST backup, by token id. */
  private readonly controls = new Map<string, BudgetState>();
  /**
   * VMs frozen by the hypervisor's own tools, with the freeze's bound: their GUEST backups are paused, not
   * controlled by load, until the thaw, or the bound should the thaw event never come (a reloaded lessor).
   */
  private readonly frozen = new Map<string, number>();
  private readonly budgetListeners = new Set<(change: BudgetChange) => void>();

  /** `tokenToWire` is rpc/wire.ts's: a grant is pushed as the Token the agent's Acquire would have had. */
  constructor(
    private readonly store: Store,
    private readonly ids: IdSource,
    private readonly log: Logger,
    known: AgentRecord[],
    private readonly tokenToWire: (lease: Lease) => v1.Token,
  ) {
    for (const record of known) this.agents.set(record.vm, { record, connected: false, budgets: new Map() });
  }

  /**
   * Attaches a hello's session at once (an older session of the same VM is closed) and resolves once the
   * hello is stored: attached first, so that a session ending meanwhile is detached, not attached after.
   */
  connect(record: AgentRecord, session: AgentSession): Promise<void> {
    const previous = this.sessions.get(record.vm);
    if (previous && previous !== session) previous.close('replaced by a newer session of the same VM');
    this.sessions.set(record.vm, session);
    const state = this.agents.get(record.vm);
    this.agents.set(record.vm, {
      record,
      connected: true,
      lastLoad: state?.lastLoad,
      budgets: state?.budgets ?? new Map(),
    });
    return this.store.saveAgent(record);
  }

  disconnect(vm: string, session: AgentSession): void {
    if (this.sessions.get(vm) !== session) return;
    this.sessions.delete(vm);
    const state = this.agents.get(vm);
    if (state) state.connected = false;
  }

  /**
   * Records a VM's load report and runs the budget controller on each of its running GUEST backups
   * (`running`, under its host's complete `policy`), telling the agent of every change.
   */
  reportLoad(
    vm: string,
    load: v1.LoadReport__Output,
    running: readonly Lease[],
    policy: Required<HostPolicy>,
    now: number,
  ): void {
    const state = this.agents.get(vm);
    if (state) state.lastLoad = load;
    if ((this.frozen.get(vm) ?? 0) > now) return;
    for (const lease of running) {
      const before = this.controls.get(lease.tokenId) ?? unknownBudgetState();
      const decision = decideBudget(policy, lease, load, before, now);
      if (decision.command) {
        const { budget, paused, reason } = decision.command;
        // An agent that was not told keeps what it had: so does the controller, to try again next report.
        if (!this.push(vm, { budget: { tokenId: lease.tokenId, budget, paused, reason } })) continue;
        this.log.info('backup budget changed', {
          vm,
          token: lease.tokenId,
          job: lease.job,
          from: before.told ? describeInstruction(before.told) : 'unknown',
          to: describeInstruction(decision.command),
          reason,
        });
        for (const listener of this.budgetListeners) listener({ lease, at: now, level: decision.state.level, reason });
      }
      this.controls.set(lease.tokenId, decision.state);
    }
  }

  /** Calls `listener` with each budget change an agent was told of. @returns the unsubscribe function. */
  onBudgetChange(listener: (change: BudgetChange) => void): () => void {
    this.budgetListeners.add(listener);
    return () => this.budgetListeners.delete(listener);
  }

  /** Records what an agent enforces on one of its backups, as it reported. */
  reportBudget(vm: string, report: v1.BudgetReport): void {
    this.agents.get(vm)?.budgets.set(report.tokenId!, report);
  }

  list(host?: string): AgentState[] {
    return [...this.agents.values()]
      .filter((a) => !host || a.record.host === host)
      .sort((a, b) => a.record.vm.localeCompare(b.record.vm));
  }

  connectedCount(host: string): number {
    let n = 0;
    for (const a of this.agents.values()) if (a.connected && a.record.host === host) n++;
    return n;
  }

  /**
   * Tells each VM's agent about grants and ends of tokens that concern it, and starts and ends the budget
   * control of its GUEST backups with them.
   */
  readonly onCommitted = (events: readonly LessorEvent[]): void => {
    for (const e of events) {
      if (e.type === 'granted' && e.lease.kind === 'GUEST' && !this.controls.has(e.lease.tokenId)) {
        this.controls.set(e.lease.tokenId, grantedBudgetState(e.lease));
      }
      if (e.type === 'released' || e.type === 'expired' || e.type === 'revoked') {
        this.controls.delete(e.lease.tokenId);
        this.agents.get(e.lease.vm)?.budgets.delete(e.lease.tokenId);
      }
      if (e.type === 'granted') this.push(e.lease.vm, { granted: { token: this.tokenToWire(e.lease) } });
      if (e.type === 'vm-frozen' || e.type === 'vm-thawed') this.freezeChanged(e);
      if (e.type === 'revoked' || e.type === 'expired') {
        this.push(e.lease.vm, {
          revoke: {
            tokenId: e.lease.tokenId,
            fencing: e.lease.fencing,
            reason: e.type === 'revoked' ? e.reason : 'the token expired: it was not renewed in time',
          },
        });
      }
    }
  };

  /**
   * Pauses a frozen VM's running GUEST backups (whose writes would block on the frozen file systems anyway),
   * and on the thaw gives each back what the budget controller last told it.
   */
  private freezeChanged(e: Extract<LessorEvent, { type: 'vm-frozen' | 'vm-thawed' }>): void {
    if (e.type === 'vm-frozen') this.frozen.set(e.vm, e.until);
    else this.frozen.delete(e.vm);
    for (const lease of e.guests) {
      const told = this.controls.get(lease.tokenId)?.told ?? { budget: lease.budget, paused: false };
      const command =
        e.type === 'vm-frozen'
          ? { tokenId: lease.tokenId, budget: told.budget, paused: true, reason: `VM frozen by ${e.source}` }
          : {
              tokenId: lease.tokenId,
              budget: told.budget,
              paused: told.paused,
              reason: `VM ${e.lapsed ? 'freeze bound passed' : 'thawed'}: back to ${describeInstruction(told)}`,
            };
      if (this.push(e.vm, { budget: command }))
        this.log.info(
          e.type === 'vm-frozen' ? 'guest backup paused for a freeze' : 'guest backup resumed after a freeze',
          { vm: e.vm, token: lease.tokenId },
        );
    }
  }

  /** Sends a command to a VM's agent (also the quiesce broker's way to it). False when the VM has no session or the send failed. */
  push(vm: string, action: Omit<v1.Command, 'commandId'>): boolean {
    const session = this.sessions.get(vm);
    if (!session) return false;
    try {
      session.send({ command: { commandId: this.ids.newId(), ...action } });
      return true;
    } catch (err) {
      this.log.warn('could not push a command to an agent', { vm, error: err as Error });
      return false;
    }
  }
}
