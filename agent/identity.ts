/**
 * Who this guest is: the VM identity the agent announces, by default the SMBIOS system UUID (what the
 * hypervisor set for the VM, stable across reinstalls of the guest), else the hostname.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export const PRODUCT_UUID_PATH = '/sys/class/dmi/id/product_uuid';

export interface VmIdentity {
  vm: string;
  source: 'config' | 'smbios' | 'hostname';
  /** Why the SMBIOS UUID was not used, when it was not. */
  note?: string;
}

export interface IdentitySources {
  readFile?: (path: string) => string;
  hostname?: () => string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Placeholders that firmware puts there when nobody set a UUID: not an identity. */
const PLACEHOLDERS = new Set([
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '03000200-0400-0500-0006-000700080009',
]);

/**
 * The VM identity: `configured` when set, else the SMBIOS system UUID (lower case), else the hostname.
 * The UUID file is readable by root only on most distributions, and absent in containers; both fall back.
 */
export function resolveVmIdentity(configured: string | undefined, sources: IdentitySources = {}): VmIdentity {
  if (configured) return { vm: configured, source: 'config' };
  const readFile = sources.readFile ?? ((p: string) => fs.readFileSync(p, 'utf8'));
  const hostname = sources.hostname ?? os.hostname;
  let note: string;
  try {
    const uuid = readFile(PRODUCT_UUID_PATH).trim().toLowerCase();
    if (UUID.test(uuid) && !PLACEHOLDERS.has(uuid)) return { vm: uuid, source: 'smbios' };
    note = `${PRODUCT_UUID_PATH} holds no usable UUID (${JSON.stringify(uuid.slice(0, 40))})`;
  } catch (err) {
    note = `cannot read ${PRODUCT_UUID_PATH} (${(err as NodeJS.ErrnoException).code ?? err})`;
  }
  return { vm: hostname(), source: 'hostname', note };
}
