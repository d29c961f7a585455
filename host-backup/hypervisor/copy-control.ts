/**
 * The copy a hypervisor-level backup makes runs inside the hypervisor (QEMU's block jobs), outside
 * host-backup's process tree, so the token's budget and the load controller's pause reach it only
 * through the hypervisor's own controls. One implementation per driver (QMP, libvirt).
 */
export interface CopyControl {
  /** Limits every copy job of the backup to this many bytes per second; 0: no limit. */
  setSpeed(bytesPerSecond: number): Promise<void>;
  /** Pauses every copy job of the backup; the guest runs on. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Bytes copied and to copy, summed over the backup's jobs, from the hypervisor's own counters. */
  progress(): Promise<{ done: number; total: number }>;
}

/**
 * Called by a driver once its copy runs, with its controls; what it answers is awaited when the copy has
 * ended (host-backup's channel stops following the budget there).
 */
export type OnCopyStarted = (control: CopyControl) => (() => Promise<void>) | undefined;
