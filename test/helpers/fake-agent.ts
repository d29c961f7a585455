/** A fake agent for integration tests against a real coordinator. */
import * as grpc from '@grpc/grpc-js';
import type { Clients } from '../../common/client/connection';
import type { v1 } from '../../proto';
import { waitFor } from './wait';

/** An agent's session as a test drives it over real gRPC: hello, load reports, budget reports, and what it was sent. */
export class FakeAgent {
  readonly received: v1.CoordinatorMessage__Output[] = [];
  error: grpc.ServiceError | undefined;
  private readonly call: grpc.ClientDuplexStream<v1.AgentMessage, v1.CoordinatorMessage__Output>;
  private seen = 0;

  constructor(
    clients: Clients,
    readonly vm: string,
    host = 'host-a',
    jobs: v1.JobDeclaration[] = [],
  ) {
    this.call = clients.agent.Session();
    this.call.on('data', (m: v1.CoordinatorMessage__Output) => this.received.push(m));
    this.call.on('error', (e: grpc.ServiceError) => (this.error = e));
    this.call.write({ hello: { vm, host, agentVersion: 'test', hostname: vm, jobs } });
  }

  async connected(): Promise<void> {
    await waitFor(() => this.received.some((m) => m.settings), 10_000, `settings for ${this.vm}`);
  }

  load(cpuPercent: number, over: Partial<v1.LoadReport> = {}): void {
    this.call.write({ load: { sampledUnixMs: Date.now(), cpuPercent, memTotalBytes: 1024 ** 3, ...over } });
  }

  report(budget: v1.BudgetReport): void {
    this.call.write({ budget });
  }

  /** The next budget command after those already taken, acknowledged as an agent does. */
  async nextBudget(): Promise<v1.BudgetCommand__Output> {
    const budgets = () => this.received.filter((m) => m.command?.budget).map((m) => m.command!);
    await waitFor(
      () => budgets().length > this.seen || this.error !== undefined,
      10_000,
      `a budget command for ${this.vm}`,
    );
    if (this.error) throw this.error;
    const command = budgets()[this.seen++];
    this.call.write({ ack: { commandId: command.commandId, ok: true, message: 'applied' } });
    return command.budget!;
  }

  budgetCommandsSoFar(): number {
    return this.received.filter((m) => m.command?.budget).length;
  }

  close(): void {
    this.call.cancel();
  }
}
