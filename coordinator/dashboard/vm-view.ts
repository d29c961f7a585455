/**
 * The dashboard's view of one VM: each of its jobs (guest and hypervisor) with its last run — outcome,
 * duration, bytes, consistency, from the ended tokens the store keeps — and its next planned slot, and its
 * backup chains as the catalogs the coordinator knows (backups.dir, the hypervisor jobs' targets) hold them,
 * each backup with the last checksum verification this coordinator ran of it.
 * Backups made into a directory the coordinator does not know (headroomctl host-backup --target elsewhere)
 * are not seen here: docs/dashboard.md says so.
 */
import { type ListedBackup, listBackups } from '../../host-backup/catalog/catalog-view';
import { CatalogError } from '../../host-backup/catalog/chain-rules';
import { ManifestStore, checkName } from '../../host-backup/catalog/manifest-store';
import * as catalogWire from '../../host-backup/catalog/snapshot-wire';
import { tokenKind } from '../../proto/enums';
import type { EndedRun } from '../store/store';
import type { Coordinator } from '../service/coordinator';
import type { AgentRegistry } from '../service/agent-registry';
import type { PlanKeeper } from '../planning/plan-keeper';
import { DEFAULT_HORIZON_MS } from '../planning/plan-view';
import type { PlacementMonitor } from '../service/placement-monitor';
import type { BackupVerifications } from '../service/backup-verifications';
import * as validate from '../rpc/validate';

/** Ended runs looked at for the last run of each job, and listed. */
export const VM_RUNS = 50;
/** Backups listed per catalog, newest: a chain longer than this is the catalog view's to show. */
export const VM_BACKUPS = 100;

export interface VmViewDeps {
  coordinator: Pick<Coordinator, 'vmEndedRuns' | 'defaultHost' | 'state'>;
  registry: Pick<AgentRegistry, 'list'>;
  plans: Pick<PlanKeeper, 'view'>;
  placement: Pick<PlacementMonitor, 'resolve' | 'nameOf'>;
  /** The checksum verifications run through this coordinator since it started. */
  verifications: Pick<BackupVerifications, 'of'>;
  /** The catalogs the coordinator knows, absolute paths. */
  catalogDirs: readonly string[];
}

type RunView = ReturnType<typeof endedRun>;

/** One job of the VM: its last ended run, its next planned slot, and since when it runs, where known. */
interface VmJob {
  kind: string;
  job: string;
  last: RunView | null;
  next: { startUnixMs: number; endUnixMs: number } | null;
  runningSinceUnixMs: number | null;
}

function endedRun(r: EndedRun) {
  return {
    kind: tokenKind.toWire(r.kind),
    job: r.job,
    grantedUnixMs: r.grantedAt,
    endedUnixMs: r.endedAt,
    state: r.state,
    success: r.outcome?.success ?? false,
    durationMs: r.outcome?.durationMs ?? r.endedAt - r.grantedAt,
    bytes: r.outcome?.bytes ?? null,
    consistency: r.outcome?.consistency ?? null,
    exitCode: r.outcome?.exitCode ?? null,
    message: r.outcome?.message ?? '',
  };
}

/** What each catalog holds of the VM (under its identity or its name), or why it could not be read. */
function catalogOf(dirs: readonly string[], names: readonly string[], verifications: Pick<BackupVerifications, 'of'>) {
  return [...new Set(dirs)].map((dir) => {
    let store: ManifestStore;
    try {
      store = ManifestStore.open(dir);
    } catch (e) {
      return { dir, unavailable: (e as Error).message, backups: [], problems: [], omitted: 0 };
    }
    const backups: ListedBackup[] = [];
    let omitted = 0;
    const problems: { file: string; problem: string }[] = [];
    for (const name of new Set(names)) {
      try {
        checkName('VM name', name);
      } catch (e) {
        // A name the catalog cannot hold (its directories are named for VMs): nothing of it is there.
        if (e instanceof CatalogError) continue;
        throw e;
      }
      const listing = listBackups(store, { vm: name }, VM_BACKUPS);
      backups.push(...listing.backups);
      omitted += listing.omitted;
      problems.push(...listing.problems.map(catalogWire.catalogProblem));
    }
    const listed = backups.map((b) => ({
      ...catalogWire.backupInfo(b),
      verified: verifications.of(b.record.id) ?? null,
    }));
    return { dir, unavailable: '', backups: listed, problems, omitted };
  });
}

/** @throws InvalidArgumentError naming `vm` */
export function vmView(deps: VmViewDeps) {
  return async (vmValue: string) => {
    const vm = deps.placement.resolve('vm', validate.name('vm', vmValue));
    const vmName = deps.placement.nameOf(vm) ?? '';
    const agent = deps.registry.list().find((a) => a.record.vm === vm);
    const runs = await deps.coordinator.vmEndedRuns(vm, VM_RUNS);
    const active = deps.coordinator.state.activeLeases().filter((l) => l.vm === vm);
    const host = agent?.record.host ?? active[0]?.host ?? deps.coordinator.defaultHost;

    const jobs = new Map<string, VmJob>();
    const entry = (kind: string, job: string): VmJob => {
      const key = `${kind}/${job}`;
      if (!jobs.has(key)) jobs.set(key, { kind, job, last: null, next: null, runningSinceUnixMs: null });
      return jobs.get(key)!;
    };
    for (const j of (agent?.record.jobs ?? []) as { name: string }[]) entry('TOKEN_KIND_GUEST', j.name);
    for (const r of runs) entry(tokenKind.toWire(r.kind), r.job).last = endedRun(r);
    for (const l of active) entry(tokenKind.toWire(l.kind), l.job).runningSinceUnixMs = l.grantedAt;
    if (deps.coordinator.state.hasHost(host)) {
      const plan = await deps.plans.view(host, DEFAULT_HORIZON_MS);
      for (const s of plan.slots) {
        if (s.vm !== vm) continue;
        const e = entry(tokenKind.toWire(s.kind), s.job);
        if (!e.next || s.start < e.next.startUnixMs) e.next = { startUnixMs: s.start, endUnixMs: s.end };
      }
    }
    return {
      vm,
      vmName,
      host,
      agent: agent
        ? { hostname: agent.record.hostname, connected: agent.connected, lastHelloUnixMs: agent.record.lastHelloAt }
        : null,
      jobs: [...jobs.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.job.localeCompare(b.job)),
      runs: runs.map(endedRun).reverse(),
      catalogs: catalogOf(deps.catalogDirs, [vm, ...(vmName ? [vmName] : [])], deps.verifications),
    };
  };
}
