/**
 * The CA's store, shared by every member of a cluster. Each member keeps its own copy of the PKI directory
 * (one CA, copied), and a call about a certificate or token reaches whichever member leads: so each
 * enrolment token made or used (only its secret's hash), and each certificate issued (enrolment, renewal) or
 * revoked, through the leader is written to etcd under `pki/tokens/<id>` or `pki/certificates/<serial>`
 * before it is acknowledged, and every member follows those keys (a watch, after reading them all) into its
 * own store. Thus a token made before a change of leader still enrols, any member lists, renews and revokes
 * any certificate, and every front door refuses a revoked one. Keys are never deleted: a revoked
 * certificate stays revoked, a used token used.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { Authority, SharedRecord } from '../pki/authority';

const keyOf = (keys: string, r: SharedRecord) =>
  'token' in r ? `${keys}tokens/${r.token.id}` : `${keys}certificates/${r.certificate.serial}`;

/** Shares `authority`'s store through etcd until the returned function is called. */
export async function sharePki(client: Etcd3, prefix: string, authority: Authority, log: Logger): Promise<() => void> {
  const keys = `${prefix}pki/`;
  const apply = (values: string[]) => authority.applyRecords(values.map((v) => JSON.parse(v) as SharedRecord));
  authority.shareRecords(async (records) => {
    await Promise.all(records.map((r) => client.put(keyOf(keys, r)).value(JSON.stringify(r)).exec()));
  });
  // Watch first, then read: a record written in between arrives one way or the other.
  const watcher = await client.watch().prefix(keys).create();
  watcher.on('put', (kv) => apply([kv.value.toString()]));
  watcher.on('error', (error) => log.warn("cannot follow the cluster's PKI records", { error }));
  apply(Object.values(await client.getAll().prefix(keys).strings()));
  return () => void watcher.cancel();
}
