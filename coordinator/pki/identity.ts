/**
 * Who a client certificate speaks for, and how that is written into it: one SAN URI,
 * `headroom://host/<H>/vm/<V>` (an agent), `headroom://host/<H>` (hypervisor-level callers of host H) or
 * `headroom://admin/<NAME>`. Segments are percent-encoded, so a name can never forge another segment.
 * A cluster member's certificate names `headroom://member/<H>`: not a caller of its own, it may only pass
 * on calls in the names of the callers it authenticated (cluster/forwarder.ts, rpc/auth-interceptor.ts).
 */
import type { PeerCertificate } from 'node:tls';
import { isValidName } from '../../common/domain/names';

export type Identity =
  { role: 'agent'; host: string; vm: string } | { role: 'host'; host: string } | { role: 'admin'; name: string };

export type Role = Identity['role'];

const SCHEME = 'headroom://';

export class IdentityError extends Error {}

function checkName(what: string, value: string): string {
  if (!isValidName(value))
    throw new IdentityError(`${what} "${value}" is not a valid name (letters, digits, . _ : @ -; at most 128)`);
  return value;
}

/** Checks the names of an identity. @throws IdentityError naming the bad part. */
export function checkIdentity(id: Identity): Identity {
  if (id.role === 'admin') return { role: 'admin', name: checkName('admin name', id.name) };
  const host = checkName('host', id.host);
  return id.role === 'host' ? { role: 'host', host } : { role: 'agent', host, vm: checkName('vm', id.vm) };
}

export function identityUri(id: Identity): string {
  const e = encodeURIComponent;
  switch (id.role) {
    case 'agent':
      return `${SCHEME}host/${e(id.host)}/vm/${e(id.vm)}`;
    case 'host':
      return `${SCHEME}host/${e(id.host)}`;
    case 'admin':
      return `${SCHEME}admin/${e(id.name)}`;
  }
}

/** Parses an identity URI. @throws IdentityError when it is not one of the three forms. */
export function parseIdentityUri(uri: string): Identity {
  if (!uri.startsWith(SCHEME)) throw new IdentityError(`"${uri}" is not a headroom:// identity`);
  const parts = uri.slice(SCHEME.length).split('/');
  let decoded: string[];
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    throw new IdentityError(`"${uri}" has a malformed escape`);
  }
  const [kind, a, sub, b] = decoded;
  if (kind === 'admin' && parts.length === 2) return checkIdentity({ role: 'admin', name: a });
  if (kind === 'host' && parts.length === 2) return checkIdentity({ role: 'host', host: a });
  if (kind === 'host' && parts.length === 4 && sub === 'vm') return checkIdentity({ role: 'agent', host: a, vm: b });
  throw new IdentityError(`"${uri}" is not headroom://host/H, headroom://host/H/vm/V or headroom://admin/NAME`);
}

/** For logs and tables: `agent web-1@pve-1`, `host pve-1`, `admin ops`. */
export function describeIdentity(id: Identity): string {
  return id.role === 'agent'
    ? `agent ${id.vm}@${id.host}`
    : id.role === 'host'
      ? `host ${id.host}`
      : `admin ${id.name}`;
}

/**
 * The identity in a verified peer certificate: its one headroom:// SAN URI. Node gives the SAN as text,
 * `URI:headroom://…, DNS:…`; our URIs are percent-encoded, so they hold no comma or quote.
 * @throws IdentityError when there is none, or more than one.
 */
export function identityOfCertificate(cert: Pick<PeerCertificate, 'subjectaltname'>): Identity {
  const uris = (cert.subjectaltname ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith(`URI:${SCHEME}`))
    .map((entry) => entry.slice('URI:'.length));
  if (uris.length === 0) throw new IdentityError('the certificate names no headroom:// identity (SAN URI)');
  if (uris.length > 1) throw new IdentityError('the certificate names more than one headroom:// identity');
  return parseIdentityUri(uris[0]);
}

const MEMBER = `${SCHEME}member/`;

/** The identity URI of the cluster member on host `host`. @throws IdentityError for a bad host name. */
export function memberUri(host: string): string {
  return `${MEMBER}${encodeURIComponent(checkName('host', host))}`;
}

/** The host of a member certificate (`headroom://member/<H>`), or undefined when it is not one. */
export function memberOfCertificate(cert: Pick<PeerCertificate, 'subjectaltname'>): string | undefined {
  const uris = (cert.subjectaltname ?? '').split(', ').filter((entry) => entry.startsWith(`URI:${SCHEME}`));
  if (uris.length !== 1 || !uris[0].startsWith(`URI:${MEMBER}`)) return undefined;
  try {
    const host = decodeURIComponent(uris[0].slice(`URI:${MEMBER}`.length));
    return isValidName(host) ? host : undefined;
  } catch {
    return undefined;
  }
}
