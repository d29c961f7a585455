/**
 * The dashboard's timeline of every host at once: per host, its runs since a time (the ended tokens the
 * store keeps, and the tokens active now), one row per host that the page expands into the host's VM rows.
 * With 50 hosts × 40 VMs this is what stays drawable: 50 rows, not 2,000.
 */
import { tokenKind } from '../../proto/enums';
import type { TokenKind } from '../domain/lease';
import type { Coordinator } from '../service/coordinator';
import type { PlacementMonitor } from '../service/placement-monitor';

/** Ended runs read per host: a night of 40 VMs with a few jobs each, with room to spare. */
export const OVERVIEW_RUNS_PER_HOST = 500;

export interface OverviewRun {
  vm: string;
  job: string;
  kind: string;
  startUnixMs: number;
  /** 0 while it runs. */
  endUnixMs: number;
  state: string;
}

export function hostOverview(
  coordinator: Pick<Coordinator, 'endedRuns' | 'state'>,
  placement: Pick<PlacementMonitor, 'nameOf'>,
) {
  const run = (vm: string, job: string, kind: TokenKind) => ({
    vm: placement.nameOf(vm) ?? vm,
    job,
    kind: tokenKind.toWire(kind),
  });
  /** Every host's runs that ended at or after `sinceUnixMs`, and the ones running. */
  return async (sinceUnixMs: number) => {
    const hosts = [];
    for (const host of coordinator.state.hostNames()) {
      const ended = await coordinator.endedRuns(host, OVERVIEW_RUNS_PER_HOST);
      const runs: OverviewRun[] = ended
        .filter((r) => r.endedAt >= sinceUnixMs)
        .map((r) => ({ ...run(r.vm, r.job, r.kind), startUnixMs: r.grantedAt, endUnixMs: r.endedAt, state: r.state }));
      for (const l of coordinator.state.activeLeases(host))
        runs.push({ ...run(l.vm, l.job, l.kind), startUnixMs: l.grantedAt, endUnixMs: 0, state: 'active' });
      hosts.push({ host, paused: coordinator.state.host(host).paused, runs });
    }
    return { hosts };
  };
}
