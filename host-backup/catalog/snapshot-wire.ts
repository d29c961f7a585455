/**
 * The snapshot catalog's answers as wire messages (admin.proto's BackupInfo, BackupVerification, …): what
 * the coordinator sends, and what headroomctl prints from a local `--dir` too, so that both print alike.
 */
import type { Consistency } from './chain-rules';
import type { CatalogProblem } from './manifest-store';
import type { ListedBackup, PruneResult, Verification } from './catalog-view';
import type * as v1 from '../../proto/generated/headroom/v1';

/**
 * Backups in one ListBackups answer: a BackupInfo takes up to ~1.5 KB with long names and paths, and an
 * answer must stay under the 1 MiB message limit.
 */
export const MAX_LISTED_BACKUPS = 500;

/** A manifest's consistency as the wire (and a release outcome) says it. */
export function wireConsistency(c: Consistency): v1.Consistency__Output {
  return c === 'application' ? 'CONSISTENCY_APPLICATION' : 'CONSISTENCY_CRASH';
}

export function backupInfo(b: ListedBackup): v1.BackupInfo__Output {
  const r = b.record;
  return {
    id: r.id,
    vm: r.vm,
    disk: r.disk,
    setId: r.setId,
    kind: r.kind === 'full' ? 'BACKUP_KIND_FULL' : 'BACKUP_KIND_INCREMENTAL',
    fullReason: r.fullReason ?? '',
    parentId: r.parentId ?? '',
    chainId: r.chainId,
    bitmap: r.bitmap,
    bitmapPersistent: r.bitmapPersistent,
    takenUnixMs: r.takenAtMs,
    durationMs: r.durationMs,
    bytes: r.bytes,
    fileBytes: r.fileBytes,
    virtualSize: r.virtualSize,
    consistency: wireConsistency(r.consistency),
    path: b.path,
    sha256: r.sha256,
    chainProblem: b.chainProblem,
  };
}

export function catalogProblem(p: CatalogProblem): v1.CatalogProblem__Output {
  return { file: p.file, problem: p.problem };
}

/** One verification; `index` is 1-based among `total`. */
export function verification(v: Verification, index: number, total: number): v1.BackupVerification__Output {
  if ('record' in v) {
    return {
      vm: v.record.vm,
      disk: v.record.disk,
      id: v.record.id,
      path: v.path,
      ok: v.ok,
      problem: v.problem ?? '',
      actualSha256: v.actual ?? '',
      index,
      total,
    };
  }
  return {
    vm: v.problem.vm,
    disk: v.problem.disk,
    id: '',
    path: v.problem.file,
    ok: false,
    problem: v.problem.problem,
    actualSha256: '',
    index,
    total,
  };
}

export function pruneResponse(result: PruneResult, dryRun: boolean): v1.PruneBackupsResponse__Output {
  return {
    dryRun,
    freedBytes: result.freedBytes,
    decisions: result.decisions.map((d) => ({
      vm: d.record.vm,
      disk: d.record.disk,
      id: d.record.id,
      keep: d.keep,
      why: d.why,
      fileBytes: d.record.fileBytes,
    })),
    problems: result.problems.map(catalogProblem),
  };
}
