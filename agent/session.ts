/**
 * The agent's session with the coordinator: one AgentService.Session stream, opened with a Hello (and
 * what the running backups are held to), then a LoadReport every report interval, and a BudgetReport
 * whenever what a backup is held to changes; the coordinator answers with SessionSettings and pushes
 * Commands, each of which is acknowledged. Reconnects forever with exponential backoff and jitter, and
 * logs the loss of the connection once rather than once per retry. A refusal that no retry cures (an
 * untrusted certificate, a missing client certificate, a name the certificate lacks: tls-diagnosis.ts) is
 * logged as an error with its fix, then retried slowly and said again only every few minutes: a fix on the
 * coordinator's side (a reissued certificate) needs no restart of the agent.
 */
import type * as grpc from '@grpc/grpc-js';
import type { v1 } from '../proto';
import { Backoff, BackoffOptions } from '../common/util/backoff';
import type { AgentClient } from '../common/client/connection';
import type { Logger } from '../common/util/log';
import type { LoadCollector } from '../common/backup-run/load-collector';
import { type ConnectionContext, describeDiagnosis, diagnoseCall } from '../common/client/tls-diagnosis';
import { errorText } from '../common/client/call-status';
import { formatDuration } from '../common/util/duration';
import { formatSpan } from '../common/util/human';

/** Until the coordinator says otherwise. */
export const DEFAULT_REPORT_INTERVAL_MS = 10_000;
/** Reports more often than this would be a load of their own. */
const MIN_REPORT_INTERVAL_MS = 1_000;

export interface CommandResult {
  ok: boolean;
  message: string;
  /** Freeze and thaw commands: the QuiesceReport, sent before the ack. */
  quiesce?: v1.QuiesceReport;
}

/** While the coordinator refuses the agent for a setting: how often to try again, and to say so again. */
export const REFUSED_RETRY_MS = 60_000;
const REFUSED_REMIND_EVERY = 10; // retries: every 10 minutes

/** Unsolicited quiesce reports kept while disconnected, for the next session (a few auto-thaws at most). */
const MAX_HELD_QUIESCE_REPORTS = 16;

export interface AgentSessionOptions {
  client: AgentClient;
  /** The Hello sent first on every (re)connection. */
  hello: () => v1.Hello;
  collector: LoadCollector;
  log: Logger;
  onSettings?(settings: v1.SessionSettings__Output): void;
  /** Handles a command; its answer is sent back as the CommandAck. */
  onCommand(command: v1.Command__Output): CommandResult | Promise<CommandResult>;
  /** The BudgetReports of the backups running now, sent after every Hello: the coordinator may have missed them. */
  budgetReports?(): v1.BudgetReport[];
  /** The freeze in force (or the last thaw), sent after every Hello: the coordinator may have missed it. */
  freezeNotice?(): v1.FreezeNotice | undefined;
  /** How the agent connects: refusals no retry can cure are told apart (tls-diagnosis.ts). */
  connection?: ConnectionContext;
  /** Reconnect backoff; default 1 s doubling to 30 s, ±20 %. */
  backoff?: BackoffOptions;
}

type SessionCall = grpc.ClientDuplexStream<v1.AgentMessage, v1.CoordinatorMessage__Output>;

export class AgentSession {
  private call?: SessionCall;
  private reportTimer?: NodeJS.Timeout;
  private reconnectTimer?: NodeJS.Timeout;
  private running = false;
  private up = false;
  /** Whether the current outage was logged already. */
  private lossLogged = false;
  /** Refusals in a row that no retry can cure. */
  private refusals = 0;
  private readonly backoff: Backoff;
  private reportIntervalMs = DEFAULT_REPORT_INTERVAL_MS;
  private latest?: v1.SessionSettings__Output;
  /** Quiesce reports (auto-thaws) that found no session up: sent once the next one is. */
  private readonly heldQuiesce: v1.QuiesceReport[] = [];

  constructor(private readonly options: AgentSessionOptions) {
    this.backoff = new Backoff(options.backoff);
  }

  /** The coordinator's latest settings, once it answered a Hello. */
  get settings(): v1.SessionSettings__Output | undefined {
    return this.latest;
  }

  get connected(): boolean {
    return this.up;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  /** Closes the stream and stops reconnecting. */
  stop(): void {
    this.running = false;
    clearTimeout(this.reportTimer);
    clearTimeout(this.reconnectTimer);
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.end();
      call.cancel();
    }
    if (this.up) this.options.log.info('session closed');
    this.up = false;
  }

  /** Sends what a backup is held to now; dropped while disconnected (the next Hello is followed by the current reports). */
  reportBudget(report: v1.BudgetReport): void {
    this.call?.write({ budget: report });
  }

  /**
   * Says the guest thawed by itself (or anything else about a freeze no command waits for). Kept while
   * disconnected and sent once a session is up again: the coordinator may be down for just that reason.
   */
  reportQuiesce(report: v1.QuiesceReport): void {
    if (this.call && this.up) this.call.write({ quiesce: report });
    else {
      this.heldQuiesce.push(report);
      if (this.heldQuiesce.length > MAX_HELD_QUIESCE_REPORTS) this.heldQuiesce.shift();
    }
  }

  /**
   * Sends a freeze or thaw by the hypervisor's own tools. True when the session is up; otherwise the next
   * Hello is followed by the current state (freezeNotice).
   */
  reportFreeze(notice: v1.FreezeNotice): boolean {
    this.call?.write({ freezeNotice: notice });
    return this.up;
  }

  private connect(): void {
    if (!this.running) return;
    const log = this.options.log;
    const call: SessionCall = this.options.client.Session();
    this.call = call;
    let ended = false;
    const onGone = (err?: grpc.ServiceError) => {
      if (ended || this.call !== call) return;
      ended = true;
      this.call = undefined;
      clearTimeout(this.reportTimer);
      if (!this.running) return;
      const why = err ? errorText(err) : 'the coordinator closed the session';
      const refusal = err && this.options.connection && diagnoseCall(err.code, why, this.options.connection);
      if (refusal?.permanent) {
        const fields = { error: describeDiagnosis(refusal), retryInMs: REFUSED_RETRY_MS };
        if (this.refusals++ % REFUSED_REMIND_EVERY === 0)
          log.error(
            `the coordinator refuses this agent, and will until a setting changes; trying again every ${formatDuration(REFUSED_RETRY_MS)}`,
            fields,
          );
        else log.debug('still refused', fields);
        this.lossLogged = true;
        this.up = false;
        this.reconnectTimer = setTimeout(() => this.connect(), REFUSED_RETRY_MS);
        return;
      }
      this.refusals = 0;
      const delay = this.backoff.next();
      // Every attempt is logged with the wait until the next: a log read later shows the agent kept trying.
      const fields = { error: why, attempt: this.backoff.attempts, retryIn: formatSpan(delay) };
      if (this.up) log.warn('session lost; reconnecting in the background', fields);
      else if (!this.lossLogged) log.warn('cannot reach the coordinator; will keep retrying', fields);
      else log.info('reconnect failed; trying again', fields);
      this.lossLogged = true;
      this.up = false;
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    };
    call.on('data', (msg: v1.CoordinatorMessage__Output) => this.receive(call, msg));
    call.on('error', (err: grpc.ServiceError) => onGone(err));
    call.on('end', () => onGone());
    call.write({ hello: this.options.hello() });
    for (const budget of this.options.budgetReports?.() ?? []) call.write({ budget });
    const freezeNotice = this.options.freezeNotice?.();
    if (freezeNotice) call.write({ freezeNotice });
    this.scheduleReport(call);
  }

  private receive(call: SessionCall, msg: v1.CoordinatorMessage__Output): void {
    if (this.call !== call) return;
    if (msg.settings) {
      const s = msg.settings;
      if (!this.up) {
        this.options.log.info('session up', { host: s.host, vm: s.vm, reportIntervalMs: s.reportIntervalMs });
        this.up = true;
        this.lossLogged = false;
        this.refusals = 0;
        this.backoff.reset();
        for (const quiesce of this.heldQuiesce.splice(0)) call.write({ quiesce });
      }
      this.latest = s;
      const interval =
        s.reportIntervalMs > 0 ? Math.max(MIN_REPORT_INTERVAL_MS, s.reportIntervalMs) : DEFAULT_REPORT_INTERVAL_MS;
      if (interval !== this.reportIntervalMs) {
        this.reportIntervalMs = interval;
        this.scheduleReport(call);
      }
      this.options.onSettings?.(s);
      return;
    }
    if (msg.command) void this.handleCommand(call, msg.command);
  }

  private async handleCommand(call: SessionCall, command: v1.Command__Output): Promise<void> {
    let result: CommandResult;
    try {
      result = await this.options.onCommand(command);
    } catch (err) {
      this.options.log.error('command failed', { commandId: command.commandId, error: err as Error });
      result = { ok: false, message: 'the agent could not carry out the command' };
    }
    if (this.call !== call) return;
    if (result.quiesce) call.write({ quiesce: result.quiesce });
    call.write({ ack: { commandId: command.commandId, ok: result.ok, message: result.message } });
  }

  private scheduleReport(call: SessionCall): void {
    clearTimeout(this.reportTimer);
    this.reportTimer = setTimeout(async () => {
      if (this.call !== call) return;
      try {
        const load = await this.options.collector.sample();
        if (this.call === call) call.write({ load });
      } catch (err) {
        this.options.log.debug('load sample failed', { error: err as Error });
      }
      if (this.call === call) this.scheduleReport(call);
    }, this.reportIntervalMs);
  }
}
