/** What the metrics read: the coordinator's state and events, the agents, the plans, placement, the store. */
import type { PlacedVm } from '../domain/placement/types';
import type { PlanView } from '../planning/plan-view';
import type { AgentState } from '../service/agent-registry';
import type { Coordinator } from '../service/coordinator';
import type { LastSuccess } from '../store/store';
import type { ChainBreaks } from './chain-breaks';

export interface MetricsSources {
  coordinator: Pick<Coordinator, 'state' | 'onCommitted' | 'storeFailure'>;
  agents: { list(host?: string): AgentState[] };
  plans: { current(host: string): PlanView | undefined };
  placement: { vms(): PlacedVm[]; nameOf(identity: string): string | undefined };
  /** This coordinator's host: the one placement speaks of. */
  host: string;
  /** The chain breaks of a VM's hypervisor run, from the backup catalogs (chain-breaks.ts). Default none. */
  chainBreaks?: ChainBreaks;
  /** The newest successful run of each VM and job, from the store, so the timestamp survives restarts. */
  lastSuccesses: readonly LastSuccess[];
}
