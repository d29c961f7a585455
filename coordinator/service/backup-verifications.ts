/**
 * The checksum verifications this coordinator ran (AdminService.VerifyBackups, `headroomctl verify`), by
 * backup id, so that the dashboard's VM view can say when each backup was last verified and with what
 * result. In memory and bounded: the catalog records no verification, and after a restart none is known.
 */

/** Backups remembered; past it the one verified longest ago is forgotten. */
export const MAX_REMEMBERED = 10_000;

export interface BackupVerification {
  ok: boolean;
  /** Why it failed; empty when ok. */
  problem: string;
  /** Wall-clock time of the verification, Unix ms. */
  atUnixMs: number;
}

export class BackupVerifications {
  private readonly byId = new Map<string, BackupVerification>();

  /** `now`: wall-clock Unix ms (times shown to people). */
  constructor(
    private readonly now: () => number,
    private readonly max = MAX_REMEMBERED,
  ) {}

  record(id: string, ok: boolean, problem = ''): void {
    // Re-inserted, so that the Map's order is the order of the last verification.
    this.byId.delete(id);
    this.byId.set(id, { ok, problem, atUnixMs: this.now() });
    if (this.byId.size > this.max) this.byId.delete(this.byId.keys().next().value!);
  }

  of(id: string): BackupVerification | undefined {
    return this.byId.get(id);
  }
}
