/**
 * The catalog on disk: a backup directory the user chooses (local disk, NFS, any mount) that describes
 * itself, so that it can be copied, moved, or restored from on a machine without Headroom:
 *
 *   DIR/headroom-catalog.json            the catalog's id (it names the dirty bitmaps this catalog relies on)
 *   DIR/<vm>/<disk>/<backup id>.qcow2    the backup; an incremental's backing file is its parent's, by a
 *                                        relative name, so the chain survives a move of the directory
 *   DIR/<vm>/<disk>/<backup id>.json     its manifest: the BackupRecord (chain-rules.ts), written last
 *   DIR/<vm>/<disk>/<backup id>.started  while the backup runs: left behind, it says that a job may have
 *                                        ended (and cleared the bitmap) unseen, so the next backup is full
 *
 * The manifests are the catalog: there is no database beside them to drift out of step (and SQLite's
 * locking is not to be trusted on NFS). A qcow2 file without a manifest is a backup that did not finish.
 */
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../common/util/atomic-file';
import { type BackupRecord, CatalogError, FULL_REASON_CODES, type FullReasonCode } from './chain-rules';

/** Manifests are for anyone who may read the backups. */
const FILE_MODE = 0o644;

const CATALOG_FILE = 'headroom-catalog.json';
const CATALOG_FORMAT = 'headroom-catalog/1';
const MANIFEST_FORMAT = 'headroom-backup/1';
const STARTED = '.started';
/** VM and disk names become directory names: no separators, no dot-only names. */
const SAFE_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,128}$/;

export function checkName(what: string, name: string): void {
  if (!SAFE_NAME.test(name))
    throw new CatalogError(`${what} "${name}" must be 1-128 letters, digits, '.', '_' or '-' (it names a directory)`);
}

/** SHA-256 of a file, hex, read as a stream (backups are large). */
export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    fs.createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

type Reader = (key: string) => unknown;

function field<T>(get: Reader, file: string, key: string, type: 'string' | 'number' | 'boolean', optional = false): T {
  const v = get(key);
  if (v === undefined && optional) return undefined as T;
  const ok =
    type === 'number'
      ? typeof v === 'number' && Number.isFinite(v) && v >= 0
      : typeof v === type && (type !== 'string' || v !== '');
  if (!ok)
    throw new CatalogError(
      `${file}: key "${key}" must be ${type === 'number' ? 'a non-negative number' : `a ${type}`}${optional ? ' when present' : ''}`,
    );
  return v as T;
}

/** Parses and checks one manifest; errors name the file and the key. */
export function parseManifest(text: string, file: string): BackupRecord {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new CatalogError(`${file}: not JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null) throw new CatalogError(`${file}: not a JSON object`);
  if (raw.format !== MANIFEST_FORMAT) throw new CatalogError(`${file}: key "format" must be "${MANIFEST_FORMAT}"`);
  const get: Reader = (k) => raw[k];
  const s = (k: string, optional = false) => field<string>(get, file, k, 'string', optional);
  const n = (k: string) => field<number>(get, file, k, 'number');
  const kind = s('kind');
  if (kind !== 'full' && kind !== 'incremental')
    throw new CatalogError(`${file}: key "kind" must be "full" or "incremental"`);
  const fullReasonCode = s('fullReasonCode', true);
  if (fullReasonCode !== undefined && !(FULL_REASON_CODES as readonly string[]).includes(fullReasonCode))
    throw new CatalogError(`${file}: key "fullReasonCode" must be one of ${FULL_REASON_CODES.join(', ')}`);
  const consistency = s('consistency');
  if (consistency !== 'crash' && consistency !== 'application')
    throw new CatalogError(`${file}: key "consistency" must be "crash" or "application"`);
  const record: BackupRecord = {
    id: s('id'),
    vm: s('vm'),
    disk: s('disk'),
    setId: s('setId'),
    kind,
    fullReason: s('fullReason', true),
    fullReasonCode: fullReasonCode as FullReasonCode | undefined,
    parentId: s('parentId', true),
    chainId: s('chainId'),
    bitmap: s('bitmap'),
    bitmapPersistent: field<boolean>(get, file, 'bitmapPersistent', 'boolean'),
    checkpoint: s('checkpoint', true),
    libvirtUri: s('libvirtUri', true),
    takenAtMs: n('takenAtMs'),
    durationMs: n('durationMs'),
    bytes: n('bytes'),
    fileBytes: n('fileBytes'),
    virtualSize: n('virtualSize'),
    consistency,
    file: s('file'),
    sha256: s('sha256'),
  };
  if (kind === 'incremental' && record.parentId === undefined)
    throw new CatalogError(`${file}: key "parentId" is required for an incremental backup`);
  if (!/^[0-9a-f]{64}$/.test(record.sha256)) throw new CatalogError(`${file}: key "sha256" must be 64 hex digits`);
  if (path.isAbsolute(record.file) || record.file.split(/[\\/]/).includes('..')) {
    throw new CatalogError(`${file}: key "file" must be a path inside the catalog directory`);
  }
  // An optional key that is absent stays absent, as in the record that was written.
  if (record.fullReason === undefined) delete record.fullReason;
  if (record.fullReasonCode === undefined) delete record.fullReasonCode;
  if (record.parentId === undefined) delete record.parentId;
  if (record.checkpoint === undefined) delete record.checkpoint;
  if (record.libvirtUri === undefined) delete record.libvirtUri;
  if ((record.checkpoint === undefined) !== (record.libvirtUri === undefined))
    throw new CatalogError(`${file}: keys "checkpoint" and "libvirtUri" go together`);
  return record;
}

/** A manifest that could not be read; `problem` names the file. */
export interface CatalogProblem {
  file: string;
  vm: string;
  disk: string;
  problem: string;
}

export class ManifestStore {
  private constructor(
    readonly dir: string,
    /** Random, made when the directory became a catalog. */
    readonly catalogId: string,
  ) {}

  /** Opens the catalog in `dir`; with `create`, makes the directory a catalog if it is not one yet. */
  static open(dir: string, options: { create?: boolean } = {}): ManifestStore {
    const root = path.resolve(dir);
    const file = path.join(root, CATALOG_FILE);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new CatalogError(`${file}: ${(err as Error).message}`);
      if (!options.create) throw new CatalogError(`${root} is not a Headroom backup directory (no ${CATALOG_FILE})`);
      fs.mkdirSync(root, { recursive: true });
      const id = randomUUID();
      writeFileAtomic(file, `${JSON.stringify({ format: CATALOG_FORMAT, id }, null, 2)}\n`, FILE_MODE);
      return new ManifestStore(root, id);
    }
    let raw: { format?: unknown; id?: unknown };
    try {
      raw = JSON.parse(text) as typeof raw;
    } catch (err) {
      throw new CatalogError(`${file}: not JSON (${(err as Error).message})`);
    }
    if (raw.format !== CATALOG_FORMAT) throw new CatalogError(`${file}: key "format" must be "${CATALOG_FORMAT}"`);
    if (typeof raw.id !== 'string' || !/^[0-9a-f-]{36}$/.test(raw.id))
      throw new CatalogError(`${file}: key "id" must be a UUID`);
    return new ManifestStore(root, raw.id);
  }

  /**
   * The dirty bitmap this catalog's chains rely on. One per catalog, so that two backup directories of
   * the same VM never clear each other's bitmap.
   */
  get bitmapName(): string {
    return `headroom-${this.catalogId.slice(0, 8)}`;
  }

  /** The directory of a disk's backups (made when absent), relative and absolute. */
  diskDir(vm: string, disk: string): { relative: string; absolute: string } {
    checkName('VM name', vm);
    checkName('disk name', disk);
    const relative = path.join(vm, disk);
    const absolute = path.join(this.dir, relative);
    fs.mkdirSync(absolute, { recursive: true });
    return { relative, absolute };
  }

  /** Every record of the catalog, or of one VM (and disk). Throws CatalogError on a malformed manifest. */
  records(vm?: string, disk?: string): BackupRecord[] {
    const { records, problems } = this.scan(vm, disk);
    if (problems.length) throw new CatalogError(problems[0].problem);
    return records;
  }

  /**
   * Every readable record of the catalog, or of one VM (and disk), and each manifest that could not be read:
   * for callers that must go on past a broken manifest (the coordinator's admin calls).
   */
  scan(vm?: string, disk?: string): { records: BackupRecord[]; problems: CatalogProblem[] } {
    const records: BackupRecord[] = [];
    const problems: CatalogProblem[] = [];
    const vms = vm === undefined ? this.subdirs(this.dir) : [vm];
    for (const v of vms) {
      checkName('VM name', v);
      const disks = disk === undefined ? this.subdirs(path.join(this.dir, v)) : [disk];
      for (const d of disks) {
        checkName('disk name', d);
        const dir = path.join(this.dir, v, d);
        if (!fs.existsSync(dir)) continue;
        for (const name of fs.readdirSync(dir).sort()) {
          if (!name.endsWith('.json')) continue;
          const file = path.join(dir, name);
          try {
            const record = parseManifest(fs.readFileSync(file, 'utf8'), file);
            if (record.vm !== v || record.disk !== d)
              throw new CatalogError(`${file}: it describes ${record.vm}/${record.disk}, not ${v}/${d}`);
            records.push(record);
          } catch (err) {
            problems.push({
              file,
              vm: v,
              disk: d,
              problem: err instanceof CatalogError ? err.message : `${file}: ${(err as Error).message}`,
            });
          }
        }
      }
    }
    return { records, problems };
  }

  /** Records a finished backup: the manifest is written last, atomically, once the qcow2 file is complete. */
  write(record: BackupRecord): void {
    const { absolute } = this.diskDir(record.vm, record.disk);
    const manifest = { format: MANIFEST_FORMAT, takenAt: new Date(record.takenAtMs).toISOString(), ...record };
    writeFileAtomic(path.join(absolute, `${record.id}.json`), `${JSON.stringify(manifest, null, 2)}\n`, FILE_MODE);
  }

  /**
   * Removes a backup: its manifest first, so that it stops counting at once (a qcow2 file left without
   * manifest is only garbage), then its file.
   */
  remove(record: BackupRecord): void {
    const { absolute } = this.diskDir(record.vm, record.disk);
    fs.rmSync(path.join(absolute, `${record.id}.json`), { force: true });
    fs.rmSync(this.pathOf(record), { force: true });
  }

  /** Notes that a backup's job is about to start; until `ended`, its outcome is unknown. */
  started(vm: string, disk: string, id: string): void {
    const { absolute } = this.diskDir(vm, disk);
    writeFileAtomic(path.join(absolute, `${id}${STARTED}`), `${JSON.stringify({ id })}\n`, FILE_MODE);
  }

  /** The outcome of the disk's backups is known (recorded, failed or cancelled): forgets every started note. */
  ended(vm: string, disk: string): void {
    for (const id of this.interrupted(vm, disk))
      fs.rmSync(path.join(this.dir, vm, disk, `${id}${STARTED}`), { force: true });
  }

  /** Backups of the disk that were started and whose end is not known. */
  interrupted(vm: string, disk: string): string[] {
    checkName('VM name', vm);
    checkName('disk name', disk);
    const dir = path.join(this.dir, vm, disk);
    if (!fs.existsSync(dir)) return [];
    return fs
      .readdirSync(dir)
      .filter((n) => n.endsWith(STARTED))
      .map((n) => n.slice(0, -STARTED.length))
      .sort();
  }

  /** The absolute path of a record's (or a would-be record's) qcow2 file. */
  pathOf(record: Pick<BackupRecord, 'file'>): string {
    return path.join(this.dir, record.file);
  }

  /** The record's qcow2 file is there with the size recorded (cheap; verify() reads it all). */
  fileIntact(record: BackupRecord): boolean {
    try {
      return fs.statSync(this.pathOf(record)).size === record.fileBytes;
    } catch {
      return false;
    }
  }

  /** Recomputes the file's SHA-256 and compares it with the record's. */
  async verify(record: BackupRecord): Promise<{ ok: boolean; actual?: string; problem?: string }> {
    try {
      const actual = await sha256File(this.pathOf(record));
      return actual === record.sha256
        ? { ok: true, actual }
        : { ok: false, actual, problem: `SHA-256 is ${actual}, the manifest says ${record.sha256}` };
    } catch (err) {
      return { ok: false, problem: (err as Error).message };
    }
  }

  private subdirs(dir: string): string[] {
    try {
      return fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory() && SAFE_NAME.test(e.name))
        .map((e) => e.name)
        .sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}
