/**
 * Real libvirt for the integration tests: starts virtlogd and libvirtd when they are not running (CI
 * machines have no service manager; the daemons are left running for the next test file, as a service
 * would be; the VM harness, test/vm/harness/, uses them too), and defines throwaway `<domain type='qemu'>` guests with no OS at all (SeaBIOS idles
 * forever under TCG, which is all libvirt's backup API needs: a running QEMU), no network, qcow2 virtio
 * disks in a temporary directory. Domains are named hr-libvirt-<random> and removed in `destroy()`.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { requireTool } from './require-tool';
import { waitFor } from './wait';

export const LIBVIRT_URI = 'qemu:///system';

/** `virsh -c LIBVIRT_URI ARGS`; rejects with virsh's stderr. */
export function virsh(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('virsh', ['-q', '-c', LIBVIRT_URI, ...args], { env: { ...process.env, LC_ALL: 'C' } }, (err, out, e) =>
      err ? reject(new Error(`virsh ${args.join(' ')}: ${e.trim() || err.message}`)) : resolve(out),
    );
  });
}

/** The same, synchronously, for clean-up at exit of the test process; throws on failure. */
export function virshSync(...args: string[]): string {
  return execFileSync('virsh', ['-q', '-c', LIBVIRT_URI, ...args], {
    encoding: 'utf8',
    stdio: 'pipe',
    env: { ...process.env, LC_ALL: 'C' },
  });
}

function running(daemon: string): boolean {
  return spawnSync('pgrep', ['-x', daemon]).status === 0;
}

/** libvirt answers on LIBVIRT_URI, its daemons started here if need be. */
export async function ensureLibvirtd(): Promise<void> {
  requireTool('virsh', 'libvirt-clients');
  requireTool('libvirtd', 'libvirt-daemon-system');
  requireTool('qemu-system-x86_64', 'qemu-system-x86');
  requireTool('qemu-img', 'qemu-utils');
  requireTool('pgrep', 'procps');
  for (const daemon of ['virtlogd', 'libvirtd']) {
    if (running(daemon)) continue;
    const started = spawnSync(daemon, ['-d'], { encoding: 'utf8' });
    if (started.status !== 0) throw new Error(`${daemon} -d failed: ${started.stderr}`);
  }
  await waitFor(
    () =>
      virsh('version').then(
        () => true,
        () => false,
      ),
    30_000,
    `libvirtd answering on ${LIBVIRT_URI}`,
  );
}

export interface TestDisk {
  /** vda, vdb … */
  target: string;
  file: string;
}

export interface TestDomain {
  name: string;
  uuid: string;
  dir: string;
  disks: TestDisk[];
  /** The file of the domain XML it was started from (to define it again). */
  xmlFile: string;
  /** Writes `length` bytes of `pattern` at `offset` of a disk, through the running guest's QEMU. */
  write(target: string, offset: number, length: number, pattern: number): Promise<void>;
  /** Stops the domain (and undefines it, with its checkpoints' metadata, when persistent); removes the files. */
  destroy(): Promise<void>;
}

export interface TestDomainOptions {
  /** Disk sizes in bytes, one per disk (vda, vdb …). */
  diskSizes: number[];
  /** Defined and started (persistent), or only created (transient, gone when stopped). */
  persistent?: boolean;
}

/** Starts a new test domain, as the module header says. */
export async function startTestDomain(o: TestDomainOptions): Promise<TestDomain> {
  const name = `hr-libvirt-${randomBytes(4).toString('hex')}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  // QEMU runs as libvirt's qemu user: libvirt hands it the image files, but the directory must let it in.
  fs.chmodSync(dir, 0o755);
  const disks = o.diskSizes.map((size, i) => {
    const target = `vd${String.fromCharCode(97 + i)}`;
    const file = path.join(dir, `${target}.qcow2`);
    const made = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(size)], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`qemu-img create: ${made.stderr}`);
    return { target, file };
  });
  // User aliases (ua-*) name the virtio devices, so that write() finds each disk's block backend.
  const xml = `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disks.map((d) => `    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${d.file}'/><target dev='${d.target}' bus='virtio'/><alias name='ua-${d.target}'/></disk>`).join('\n')}
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
  </devices>
</domain>
`;
  const xmlFile = path.join(dir, 'domain.xml');
  fs.writeFileSync(xmlFile, xml);
  try {
    if (o.persistent) {
      await virsh('define', xmlFile);
      await virsh('start', name);
    } else {
      await virsh('create', xmlFile);
    }
  } catch (err) {
    await virsh('undefine', name).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const uuid = (await virsh('domuuid', name)).trim();
  return {
    name,
    uuid,
    dir,
    disks,
    xmlFile,
    async write(target, offset, length, pattern) {
      // Flushed, so that the image file reads as the guest sees it (copies taken with qemu-img -U).
      for (const io of [`write -P 0x${pattern.toString(16)} ${offset} ${length}`, 'flush']) {
        const out = await virsh(
          'qemu-monitor-command',
          name,
          '--hmp',
          `qemu-io -d /machine/peripheral/ua-${target}/virtio-backend "${io}"`,
        );
        // qemu-io answers through HMP only when it fails.
        if (out.trim()) throw new Error(`qemu-io ${io} on ${target}: ${out.trim()}`);
      }
    },
    async destroy() {
      await virsh('destroy', name).catch(() => undefined);
      await virsh('undefine', name, '--checkpoints-metadata').catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
