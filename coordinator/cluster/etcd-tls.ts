/**
 * The etcd client's TLS (coordinator.yaml `etcd.tls`): the CA that signed etcd's certificates and this
 * member's client certificate, for an etcd run with `--client-cert-auth`, as production clusters are.
 */
import * as fs from 'node:fs';
import type { IOptions } from 'etcd3';
import type { EtcdOptions } from '../config';

/** The etcd3 client options for `etcd.tls`; none without it. Reads the files (config.ts checked they exist). */
export function etcdTls(etcd: Pick<EtcdOptions, 'tls'>): Pick<IOptions, 'credentials' | 'grpcOptions'> {
  const { tls } = etcd;
  if (!tls) return {};
  return {
    credentials: {
      rootCertificate: fs.readFileSync(tls.caFile),
      certChain: fs.readFileSync(tls.certFile),
      privateKey: fs.readFileSync(tls.keyFile),
    },
    // grpc-js sends the endpoint's host as the TLS server name and checks the certificate against it; an IP
    // address there is against RFC 6066 (Node warns, DEP0123), so a name etcd's certificate carries is checked.
    ...(tls.serverName ? { grpcOptions: { 'grpc.ssl_target_name_override': tls.serverName } } : {}),
  };
}
