/**
 * The runs the dashboard's timelines draw: per host, its runs since a time (the ended tokens the store
 * keeps, and the tokens active now). Every host at once is one row per host that the page expands into the
 * host's VM rows: with 50 hosts × 40 VMs, 50 rows, not 2,000. Read from the tokens, not the history, so a
 * host's day is whole whatever number of events it made.
 */
import { tokenKind } from '../../proto/enums';
import type { TokenKind } from '../domain/lease';
import type { Coordinator } from '../service/coordinator';
import type { PlacementMonitor } from '../service/placement-monitor';

/** Ended runs read per host when every host is asked for: a day of 40 VMs with a few jobs each. */
export const RUNS_PER_HOST = 200;
/** Ended runs read of one host: a day of 2,000 VMs' runs (about 300 KB of JSON). */
export const RUNS_OF_ONE_HOST = 5_000;

export interface OverviewRun {
  vm: string;
  job: string;
  kind: string;
  startUnixMs: number;
  /** 0 while it runs. */
  endUnixMs: number;
  state: string;
  /** Active runs only: the token whose end the event stream will tell. */
  tokenId?: string;
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
  /** The runs of `host` (of every host when undefined) that ended at or after `sinceUnixMs`, and the ones running. */
  return async (sinceUnixMs: number, host?: string) => {
    const hosts = [];
    for (const name of host === undefined ? coordinator.state.hostNames() : [host]) {
      const ended = await coordinator.endedRuns(name, host === undefined ? RUNS_PER_HOST : RUNS_OF_ONE_HOST);
      const runs: OverviewRun[] = ended
        .filter((r) => r.endedAt >= sinceUnixMs)
        .map((r) => ({ ...run(r.vm, r.job, r.kind), startUnixMs: r.grantedAt, endUnixMs: r.endedAt, state: r.state }));
      for (const l of coordinator.state.activeLeases(name)) {
        const active = { startUnixMs: l.grantedAt, endUnixMs: 0, state: 'active', tokenId: l.tokenId };
        runs.push({ ...run(l.vm, l.job, l.kind), ...active });
      }
      hosts.push({ host: name, paused: coordinator.state.host(name).paused, runs });
    }
    return { hosts };
  };
}
