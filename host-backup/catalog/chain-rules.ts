/**
 * The backup catalog's rules, pure: what a backup record says, which records form a valid chain, whether
 * the next backup of a disk may be incremental or must be full (and why), and which chain restores a disk
 * as it was at a given time. The adapters (manifest-store.ts, qmp-driver.ts) observe the world and pass
 * plain facts in; nothing here reads a file, a clock or QEMU.
 */

export type BackupKind = 'full' | 'incremental';
/** 'crash' until the guest is quiesced around the snapshot (issue 5's quiesce protocol). */
export type Consistency = 'crash' | 'application';

/** One backup of one disk: a qcow2 file (backed by its parent's when incremental) and what is known of it. */
export interface BackupRecord {
  /** Unique within the catalog; the stem of the qcow2 and manifest file names. */
  id: string;
  vm: string;
  disk: string;
  /** The backup run it was part of: every disk of the VM backed up in the same QMP transaction shares it. */
  setId: string;
  kind: BackupKind;
  /** For a full backup: why it was full (FullReason's text). */
  fullReason?: string;
  /** For a full backup: FullReason's code (absent in records written before it was kept). */
  fullReasonCode?: FullReasonCode;
  /** For an incremental: the backup its qcow2 file is backed by. */
  parentId?: string;
  /** The id of the chain's full backup. */
  chainId: string;
  /** The dirty bitmap that was synchronised with this backup, and whether QEMU stores it in the image. */
  bitmap: string;
  bitmapPersistent: boolean;
  /**
   * libvirt: the checkpoint created with this backup, which owns the bitmap (libvirt names the bitmap after
   * it), and the libvirt connection URI of the domain (`vm` is its UUID). The next incremental starts from
   * it; pruning the backup deletes it.
   */
  checkpoint?: string;
  libvirtUri?: string;
  /** The point in time the backup holds: when its transaction started, Unix ms. */
  takenAtMs: number;
  durationMs: number;
  /** Bytes the backup job copied (dirty bytes for an incremental). */
  bytes: number;
  /** Size of the qcow2 file. */
  fileBytes: number;
  /** The disk's size when backed up. */
  virtualSize: number;
  consistency: Consistency;
  /** The qcow2 file, relative to the catalog directory. */
  file: string;
  /** SHA-256 of the qcow2 file, hex. */
  sha256: string;
}

/** What QEMU says about the bitmap the catalog relies on; undefined when the node has no such bitmap. */
export interface BitmapObservation {
  persistent: boolean;
  recording: boolean;
  /** Set by QEMU when a persistent bitmap was in use at an unclean shutdown: its bits cannot be trusted. */
  inconsistent: boolean;
  /** In use by a job already: another backup is running. */
  busy: boolean;
}

/** What the hypervisor says about one checkpoint (libvirt) of the disk. */
export interface CheckpointObservation {
  /** The checkpoint's bitmap on this disk; undefined when the checkpoint does not cover the disk or its bitmap is gone. */
  bitmap?: BitmapObservation;
}

export interface DiskObservation {
  virtualSize: number;
  /** The catalog's own bitmap (qmp driver). */
  bitmap?: BitmapObservation;
  /**
   * Drivers whose bitmaps belong to named checkpoints (libvirt): the checkpoints the hypervisor knows for
   * the disk, by name (at least the one the latest backup created, when it is there).
   */
  checkpoints?: ReadonlyMap<string, CheckpointObservation>;
}

export const FULL_REASON_CODES = [
  'requested',
  'no-previous-backup',
  'interrupted',
  'chain-broken',
  'parent-missing',
  'checkpoint-missing',
  'bitmap-missing',
  'bitmap-inconsistent',
  'bitmap-not-recording',
  'disk-resized',
  'chain-too-long',
] as const;
export type FullReasonCode = (typeof FULL_REASON_CODES)[number];

/**
 * The reasons for a full backup that are not a broken chain: one asked for, the first backup of a disk,
 * the chain's length policy. Every other reason is what a chain-break alert is about.
 */
const NOT_CHAIN_BREAKS: ReadonlySet<FullReasonCode> = new Set<FullReasonCode>([
  'requested',
  'no-previous-backup',
  'chain-too-long',
]);

/** Why this full backup had to be taken because its chain broke; undefined for any other backup. */
export function chainBreak(record: BackupRecord): FullReasonCode | undefined {
  const code = record.fullReasonCode;
  return record.kind === 'full' && code !== undefined && !NOT_CHAIN_BREAKS.has(code) ? code : undefined;
}

export interface FullReason {
  code: FullReasonCode;
  /** One sentence for people and for the catalog. */
  text: string;
}

export type BackupPlan =
  { kind: 'full'; reason: FullReason } | { kind: 'incremental'; parent: BackupRecord; chain: BackupRecord[] };

export interface PlanInput {
  /** Every record of this VM's disk (any order). */
  records: readonly BackupRecord[];
  disk: DiskObservation;
  /**
   * Backups of this disk that were started and whose end nobody saw (the backup process died, or lost
   * QMP): QEMU may have finished them and cleared the bitmap with nothing recorded.
   */
  interrupted?: readonly string[];
  /** Whether a record's qcow2 file is still in the catalog directory, with the size recorded. */
  fileIntact(record: BackupRecord): boolean;
  /** The person asked for a full backup. */
  forceFull?: boolean;
  /** Make a full backup once a chain holds this many incrementals (0 or absent: never for that reason). */
  maxIncrementals?: number;
}

/** The catalog or a chain is not what a restore or a backup needs; the message says what is wrong. */
export class CatalogError extends Error {
  override readonly name = 'CatalogError';
}

/** The latest record of a disk, by the time its backup holds. */
export function latestRecord(records: readonly BackupRecord[]): BackupRecord | undefined {
  let latest: BackupRecord | undefined;
  for (const r of records) if (!latest || r.takenAtMs > latest.takenAtMs) latest = r;
  return latest;
}

/**
 * The chain that ends at `top`, oldest (the full backup) first. Throws CatalogError when a parent is not
 * in the catalog, a link goes back in time, or the chain does not start with a full backup.
 */
export function chainTo(records: readonly BackupRecord[], top: BackupRecord): BackupRecord[] {
  const byId = new Map(records.map((r) => [r.id, r]));
  const chain: BackupRecord[] = [top];
  let current = top;
  while (current.kind === 'incremental') {
    if (current.parentId === undefined)
      throw new CatalogError(`backup ${current.id} is incremental but names no parent`);
    const parent = byId.get(current.parentId);
    if (!parent) throw new CatalogError(`backup ${current.id}'s parent ${current.parentId} is not in the catalog`);
    if (parent.disk !== top.disk || parent.vm !== top.vm)
      throw new CatalogError(`backup ${current.id}'s parent ${parent.id} belongs to another disk`);
    if (parent.takenAtMs >= current.takenAtMs)
      throw new CatalogError(`backup ${current.id}'s parent ${parent.id} is not older than it`);
    if (parent.chainId !== top.chainId)
      throw new CatalogError(`backup ${current.id}'s parent ${parent.id} belongs to another chain`);
    chain.push(parent);
    current = parent;
  }
  if (current.id !== top.chainId)
    throw new CatalogError(`backup ${top.id}'s chain ${top.chainId} starts at ${current.id} instead`);
  return chain.reverse();
}

function full(code: FullReasonCode, text: string): BackupPlan {
  return { kind: 'full', reason: { code, text } };
}

/**
 * Whether the next backup of a disk may be incremental on top of its latest backup, or must be full.
 * An incremental is only honest when the bitmap has recorded every write since the latest backup and that
 * backup's chain can still be read back; anything else makes it full, with the reason.
 */
export function planNextBackup(input: PlanInput): BackupPlan {
  if (input.forceFull) return full('requested', 'a full backup was asked for');
  const last = latestRecord(input.records);
  if (!last) return full('no-previous-backup', 'no previous backup of this disk in the catalog');
  if (input.interrupted?.length) {
    return full(
      'interrupted',
      `backup ${input.interrupted.join(', ')} was interrupted before its end was known: QEMU may have cleared the bitmap with nothing recorded`,
    );
  }
  let chain: BackupRecord[];
  try {
    chain = chainTo(input.records, last);
  } catch (err) {
    return full('chain-broken', `the latest backup's chain is broken: ${(err as Error).message}`);
  }
  const missing = chain.find((r) => !input.fileIntact(r));
  if (missing) return full('parent-missing', `backup file ${missing.file} of the chain is missing or was changed`);
  let bitmap = input.disk.bitmap;
  if (last.checkpoint !== undefined) {
    // The checkpoint owns the bitmap: the bitmap rules below apply to the checkpoint's.
    const checkpoint = input.disk.checkpoints?.get(last.checkpoint);
    if (!checkpoint) {
      return full(
        'checkpoint-missing',
        `checkpoint ${last.checkpoint} is missing: it was deleted, or the domain was redefined, or it is transient and was restarted`,
      );
    }
    bitmap = checkpoint.bitmap;
    if (!bitmap) {
      return full(
        'bitmap-missing',
        `checkpoint ${last.checkpoint} has no usable bitmap on this disk: it was removed, the disk was replaced (e.g. restored), or QEMU stopped uncleanly (a crash) before storing it`,
      );
    }
  }
  if (!bitmap) {
    const why = last.bitmapPersistent
      ? 'it was removed, or the disk was replaced (e.g. restored)'
      : 'it was not persistent (the image format cannot store it), so QEMU lost it when it stopped';
    return full('bitmap-missing', `dirty bitmap ${last.bitmap} is missing: ${why}`);
  }
  if (bitmap.inconsistent) {
    return full(
      'bitmap-inconsistent',
      `dirty bitmap ${last.bitmap} is inconsistent: QEMU stopped uncleanly while it was in use, so it may have missed writes`,
    );
  }
  if (!bitmap.recording)
    return full('bitmap-not-recording', `dirty bitmap ${last.bitmap} is disabled: it may have missed writes`);
  if (input.disk.virtualSize !== last.virtualSize) {
    return full('disk-resized', `the disk's size changed from ${last.virtualSize} to ${input.disk.virtualSize} bytes`);
  }
  const incrementals = chain.length - 1;
  if (input.maxIncrementals && incrementals >= input.maxIncrementals) {
    return full(
      'chain-too-long',
      `the chain already holds ${incrementals} incremental backups (at most ${input.maxIncrementals})`,
    );
  }
  return { kind: 'incremental', parent: last, chain };
}

/**
 * The chain to restore a disk as it was at `atMs`: the latest backup taken at or before that time, with
 * its ancestors, oldest first. Throws CatalogError when there is none.
 */
export function restoreChain(records: readonly BackupRecord[], atMs: number): BackupRecord[] {
  const candidates = records.filter((r) => r.takenAtMs <= atMs);
  const top = latestRecord(candidates);
  if (!top) {
    const first = records.reduce<BackupRecord | undefined>(
      (a, r) => (!a || r.takenAtMs < a.takenAtMs ? r : a),
      undefined,
    );
    throw new CatalogError(
      first
        ? `no backup taken at or before ${new Date(atMs).toISOString()}; the first is from ${new Date(first.takenAtMs).toISOString()}`
        : 'no backups',
    );
  }
  return chainTo(records, top);
}
