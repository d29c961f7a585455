/**
 * The CA's certificate records, shared by every member of a cluster. Each member keeps its own copy of
 * the PKI directory (one CA, copied), and a call about a certificate reaches whichever member leads: so
 * each certificate issued (enrolment, renewal) or revoked through the leader is written to etcd under
 * `pki/certificates/<serial>` before it is acknowledged, and every member follows those keys (a watch,
 * after reading them all) into its own store. Thus any member lists, renews and revokes any certificate,
 * and every front door refuses a revoked one. Keys are never deleted: a revoked certificate stays revoked.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { Authority } from '../pki/authority';
import type { CertificateRecord } from '../pki/pki-store';

/** Shares `authority`'s certificate records through etcd until the returned function is called. */
export async function sharePki(client: Etcd3, prefix: string, authority: Authority, log: Logger): Promise<() => void> {
  const keys = `${prefix}pki/certificates/`;
  const apply = (values: string[]) => authority.applyRecords(values.map((v) => JSON.parse(v) as CertificateRecord));
  authority.shareRecords(async (records) => {
    await Promise.all(records.map((c) => client.put(`${keys}${c.serial}`).value(JSON.stringify(c)).exec()));
  });
  // Watch first, then read: a record written in between arrives one way or the other.
  const watcher = await client.watch().prefix(keys).create();
  watcher.on('put', (kv) => apply([kv.value.toString()]));
  watcher.on('error', (error) => log.warn("cannot follow the cluster's certificate records", { error }));
  apply(Object.values(await client.getAll().prefix(keys).strings()));
  return () => void watcher.cancel();
}
