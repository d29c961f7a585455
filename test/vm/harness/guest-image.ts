/**
 * The guests' common initramfs, built at test time and cached under the OS temporary directory, keyed by
 * the hash of everything in it: Debian's busybox-static, the virtio modules of linux-image-cloud-amd64 (with
 * a modules.dep made by depmod), the single-executable agent with the shared libraries ldd names, and /init
 * (guest-init.ts). Each guest appends its own files (guest-overlay.ts). Also the kernel, copied next to the
 * image, since /boot's is readable by root only and libvirt's QEMU does not run as root.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { requireTool } from '../../helpers/require-tool';
import { INIT_SCRIPT } from './guest-init';
import { BUSYBOX, packCpio } from './cpio';

/** The kernel package's version string, e.g. 6.1.0-57-cloud-amd64: the newest cloud kernel installed. */
export function cloudKernelVersion(): string {
  const versions = fs.existsSync('/boot')
    ? fs.readdirSync('/boot').filter((f) => /^vmlinuz-.*-cloud-amd64$/.test(f))
    : [];
  if (versions.length === 0) requireTool('/boot/vmlinuz-*-cloud-amd64', 'linux-image-cloud-amd64');
  return versions
    .map((f) => f.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .at(-1)!;
}

/** The modules /init loads; modprobe brings their dependencies (ext4 is built into this kernel). */
const MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk', 'virtio_console'];
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
export const AGENT_EXECUTABLE = path.join(REPO_ROOT, 'dist', 'bin', 'headroom-agent');

export interface GuestImage {
  kernel: string;
  /** A newc cpio archive, uncompressed: the guest's RAM is plenty and TCG is slow at decompressing. */
  initramfs: string;
  kernelVersion: string;
}

/** Builds dist/bin/headroom-agent (after `npm run build`) when it is missing. */
export function ensureAgentExecutable(): string {
  if (!fs.existsSync(AGENT_EXECUTABLE)) {
    execFileSync(process.execPath, [path.join(REPO_ROOT, 'agent', 'build-sea.js')], { stdio: 'inherit' });
  }
  return AGENT_EXECUTABLE;
}

/** The files in the image, guest path → host path. */
function imageFiles(kernelVersion: string, agent: string): Map<string, string> {
  requireTool(BUSYBOX, 'busybox-static');
  requireTool('modprobe', 'kmod');
  requireTool('depmod', 'kmod');
  const files = new Map<string, string>([
    ['/bin/busybox', BUSYBOX],
    ['/bin/headroom-agent', agent],
  ]);
  const insmods = execFileSync('modprobe', ['-a', '-S', kernelVersion, '--show-depends', ...MODULES], {
    encoding: 'utf8',
  });
  for (const line of insmods.split('\n')) {
    const m = /^insmod (\S+)/.exec(line);
    if (m) files.set(m[1], m[1]);
  }
  const moduleDir = `/lib/modules/${kernelVersion}`;
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    files.set(`${moduleDir}/${f}`, `${moduleDir}/${f}`);
  }
  // "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "\t/lib64/ld-linux-x86-64.so.2 (0x...)".
  for (const line of execFileSync('ldd', [agent], { encoding: 'utf8' }).split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m) files.set(m[1], fs.realpathSync(m[1]));
  }
  return files;
}

function hashOf(kernelVersion: string, files: Map<string, string>): string {
  const hash = createHash('sha256').update(`${kernelVersion}\n${INIT_SCRIPT}\n`);
  for (const [guest, host] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(`${guest}\n`).update(fs.readFileSync(host));
  }
  return hash.digest('hex').slice(0, 16);
}

/** Images unused this long are removed when another is built (each is about 100 MiB: the agent is most of it). */
const STALE_IMAGE_MS = 24 * 3_600_000;

function removeStaleImages(cache: string): void {
  if (!fs.existsSync(cache)) return;
  for (const entry of fs.readdirSync(cache)) {
    const dir = path.join(cache, entry);
    if (Date.now() - fs.statSync(dir).mtimeMs > STALE_IMAGE_MS) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Returns the cached image for these inputs, building it first when there is none. Throws naming a missing package. */
export function guestImage(): GuestImage {
  const kernelVersion = cloudKernelVersion();
  const files = imageFiles(kernelVersion, ensureAgentExecutable());
  const dir = path.join(os.tmpdir(), 'headroom-vm-images', hashOf(kernelVersion, files));
  const image: GuestImage = {
    kernel: path.join(dir, 'vmlinuz'),
    initramfs: path.join(dir, 'initramfs.cpio'),
    kernelVersion,
  };
  if (fs.existsSync(image.initramfs)) {
    fs.utimesSync(dir, new Date(), new Date());
    return image;
  }
  removeStaleImages(path.dirname(dir));

  // Built beside and renamed into place, so that a build cut short never looks finished.
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  const build = fs.mkdtempSync(`${dir}.build-`);
  const root = path.join(build, 'root');
  for (const [guest, host] of files) {
    fs.mkdirSync(path.join(root, path.dirname(guest)), { recursive: true });
    fs.copyFileSync(host, path.join(root, guest));
  }
  fs.writeFileSync(path.join(root, 'init'), INIT_SCRIPT, { mode: 0o755 });
  execFileSync('depmod', ['-b', root, kernelVersion]);
  packCpio(root, path.join(build, 'initramfs.cpio'));
  fs.rmSync(root, { recursive: true });
  fs.copyFileSync(`/boot/vmlinuz-${kernelVersion}`, path.join(build, 'vmlinuz'));
  // libvirt's QEMU runs as libvirt-qemu: it must read the kernel and image.
  for (const f of fs.readdirSync(build)) fs.chmodSync(path.join(build, f), 0o644);
  fs.chmodSync(build, 0o755);
  try {
    fs.renameSync(build, dir);
  } catch (err) {
    // Another test process built the same image first.
    if (!fs.existsSync(image.initramfs)) throw err;
    fs.rmSync(build, { recursive: true, force: true });
  }
  return image;
}
