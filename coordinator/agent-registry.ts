/**
 * Who the agents are and which are connected: their last hello (persisted), their last load (in memory,
 * replaced every report) and the session to push commands to. Pushes revoke and grant notices when the
 * coordinator commits them.
 */
import type { Logger } from '../common/log';
import type { LessorEvent } from './domain/events';
import type { IdSource } from './domain/lessor';
import type { AgentRecord, Store } from './store';
import * as wire from './rpc/wire';
import type * as v1 from '../proto/generated/headroom/v1';

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
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentState>();
  private readonly sessions = new Map<string, AgentSession>();

  constructor(private readonly store: Store, private readonly ids: IdSource, private readonly log: Logger, known: AgentRecord[]) {
    for (const record of known) this.agents.set(record.vm, { record, connected: false });
  }

  /** Records a hello and attaches its session; an older session of the same VM is closed. */
  connect(record: AgentRecord, session: AgentSession): void {
    this.store.saveAgent(record);
    const previous = this.sessions.get(record.vm);
    if (previous && previous !== session) previous.close('replaced by a newer session of the same VM');
    this.sessions.set(record.vm, session);
    const state = this.agents.get(record.vm);
    this.agents.set(record.vm, { record, connected: true, lastLoad: state?.lastLoad });
  }

  disconnect(vm: string, session: AgentSession): void {
    if (this.sessions.get(vm) !== session) return;
    this.sessions.delete(vm);
    const state = this.agents.get(vm);
    if (state) state.connected = false;
  }

  reportLoad(vm: string, load: v1.LoadReport): void {
    const state = this.agents.get(vm);
    if (state) state.lastLoad = load;
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

  /** Tells each VM's agent about grants and ends of tokens that concern it. */
  readonly onCommitted = (events: readonly LessorEvent[]): void => {
    for (const e of events) {
      if (e.type !== 'granted' && e.type !== 'revoked' && e.type !== 'expired') continue;
      const session = this.sessions.get(e.lease.vm);
      if (!session) continue;
      const commandId = this.ids.newId();
      const command: v1.Command =
        e.type === 'granted'
          ? { commandId, granted: { token: wire.token(e.lease) } }
          : {
              commandId,
              revoke: {
                tokenId: e.lease.tokenId,
                fencing: e.lease.fencing,
                reason: e.type === 'revoked' ? e.reason : 'the token expired: it was not renewed in time',
              },
            };
      try {
        session.send({ command });
      } catch (err) {
        this.log.warn('could not push a command to an agent', { vm: e.lease.vm, error: err as Error });
      }
    }
  };
}
