/**
 * A guest's own initramfs: the common image (guest-image.ts) with a second archive appended that holds
 * this guest's files (agent.yaml, certificates, ...) and the settings /init reads (which disks to mount).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packCpio } from './cpio';
import { GUEST_ENV_PATH } from './guest-init';

export interface OverlayOptions {
  /** Files to place in the guest, guest path → contents. */
  files: Record<string, string | Buffer>;
  /** Mounts, as /init takes them: virtio device name (vda) → mount point. */
  mounts: ReadonlyArray<{ device: string; mountPoint: string }>;
}

/** Writes `out`: `base` followed by the guest's own archive (built in `workDir`). */
export function writeGuestInitramfs(base: string, workDir: string, out: string, options: OverlayOptions): void {
  const root = path.join(workDir, 'overlay');
  const env = `HR_MOUNTS='${options.mounts.map((m) => `${m.device}:${m.mountPoint}`).join(' ')}'\n`;
  for (const [file, contents] of Object.entries({ ...options.files, [GUEST_ENV_PATH]: env })) {
    if (!path.isAbsolute(file)) throw new Error(`guest file ${JSON.stringify(file)}: expected an absolute path`);
    fs.mkdirSync(path.join(root, path.dirname(file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), contents, { mode: 0o600 });
  }
  const overlay = path.join(workDir, 'overlay.cpio');
  packCpio(root, overlay);
  fs.copyFileSync(base, out);
  fs.appendFileSync(out, fs.readFileSync(overlay));
  fs.rmSync(root, { recursive: true });
  fs.rmSync(overlay);
}
