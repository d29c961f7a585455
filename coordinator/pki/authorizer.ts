/**
 * The access rule, in one pure function per step: which calls need no certificate, which role may call
 * which method, and what each role may ask for in its messages. The auth interceptor applies it to every
 * call and every message; nothing else decides who may do what.
 *
 *  - open: health checks, reflection, and PkiService.Enroll (its enrolment token is the credential);
 *  - every role: PkiService.RenewCertificate of a certificate of its own identity (admins included: an
 *    agent's key is its own, so nobody renews for another);
 *  - admin: every call;
 *  - host (hypervisor-level callers of host H): TokenService with HYPERVISOR tokens on host H, Quiesce and
 *    Thaw of their guests included, and AdminService.GetPolicy, ListHistory and WatchHistory of H
 *    (host-backup's load control reads the policy; it hears of a revoke of its token from the history);
 *  - agent (VM V on host H): TokenService with GUEST tokens for V on H (never Quiesce or Thaw: freezing a
 *    guest is the host's call), and AgentService.Session as V on H.
 */
import type { TokenKind } from '../domain/lease';
import { tokenKind } from '../../proto/enums';
import { type Identity, describeIdentity, identityUri } from './identity';

export type Decision = { allow: true } | { allow: false; reason: string };

const ALLOW: Decision = { allow: true };
const deny = (reason: string): Decision => ({ allow: false, reason });

const OPEN_PREFIXES = [
  '/grpc.health.v1.Health/',
  '/grpc.reflection.v1alpha.ServerReflection/',
  '/grpc.reflection.v1.ServerReflection/',
];
export const ENROLL_METHOD = '/headroom.v1.PkiService/Enroll';
const TOKEN_METHODS = new Set([
  '/headroom.v1.TokenService/Acquire',
  '/headroom.v1.TokenService/Renew',
  '/headroom.v1.TokenService/Release',
]);
const QUIESCE_METHODS = new Set(['/headroom.v1.TokenService/Quiesce', '/headroom.v1.TokenService/Thaw']);
const SESSION_METHOD = '/headroom.v1.AgentService/Session';
/** What a host identity may read of its own host. */
const HOST_READ_METHODS = new Set([
  '/headroom.v1.AdminService/GetPolicy',
  '/headroom.v1.AdminService/ListHistory',
  '/headroom.v1.AdminService/WatchHistory',
]);
const RENEW_METHOD = '/headroom.v1.PkiService/RenewCertificate';

/** True for the calls anyone may make, with or without a certificate. */
export function isOpenMethod(path: string): boolean {
  return path === ENROLL_METHOD || OPEN_PREFIXES.some((p) => path.startsWith(p));
}

/** `/headroom.v1.AdminService/ListHosts` → `AdminService.ListHosts`, for messages. */
export function methodName(path: string): string {
  const [service, method] = path.slice(1).split('/');
  return `${service.split('.').pop()}.${method}`;
}

/** Whether `identity` may call `path` at all (before any message is read). */
export function authorizeCall(path: string, identity: Identity): Decision {
  if (identity.role === 'admin') return ALLOW;
  if (TOKEN_METHODS.has(path) || path === RENEW_METHOD) return ALLOW;
  if (QUIESCE_METHODS.has(path) && identity.role === 'host') return ALLOW;
  if (path === SESSION_METHOD && identity.role === 'agent') return ALLOW;
  if (HOST_READ_METHODS.has(path) && identity.role === 'host') return ALLOW;
  const needs =
    path === SESSION_METHOD
      ? 'the agent role'
      : QUIESCE_METHODS.has(path)
        ? 'the host role'
        : HOST_READ_METHODS.has(path)
          ? 'the host role (its own host) or the admin role'
          : 'the admin role';
  return deny(`${methodName(path)} needs ${needs}; the caller is ${describeIdentity(identity)}`);
}

/**
 * What a token request is about: from an AcquireRequest (its kind named as the domain names it), or from the
 * active lease a Renew/Release names.
 */
export interface TokenSubject {
  kind: TokenKind | string;
  host: string;
  vm: string;
}

export interface MessageContext {
  /** The coordinator's own host: what an empty host in a request means. */
  defaultHost: string;
  /** The active lease with this id, when there is one. */
  lease(tokenId: string): TokenSubject | undefined;
  /** Whose certificate this serial is, when this coordinator's CA issued it (RenewCertificate). */
  certificateOwner?(serial: string): Identity | undefined;
  /**
   * A VM's identity (placement: a libvirt name or Proxmox VMID is its UUID), so that an agent whose
   * certificate names `web1` holds the tokens the coordinator keys by web1's UUID. Default: itself.
   */
  vmIdentity?(vm: string): string;
}

/** Whether `identity` may act on this token subject; VMs compared by `vmIdentity`. */
export function authorizeToken(
  identity: Identity,
  subject: TokenSubject,
  vmIdentity: (vm: string) => string = (vm) => vm,
): Decision {
  if (identity.role === 'admin') return ALLOW;
  const who = describeIdentity(identity);
  if (identity.role === 'agent') {
    if (subject.kind !== 'GUEST') return deny(`${who} may take GUEST tokens only, not ${subject.kind}`);
    if (vmIdentity(subject.vm) !== vmIdentity(identity.vm) || subject.host !== identity.host) {
      return deny(
        `${who} may act only for its own VM, not for vm ${JSON.stringify(subject.vm)} on host ${JSON.stringify(subject.host)}`,
      );
    }
    return ALLOW;
  }
  if (subject.kind !== 'HYPERVISOR') return deny(`${who} may take HYPERVISOR tokens only, not ${subject.kind}`);
  if (subject.host !== identity.host)
    return deny(`${who} may act only on its own host, not on ${JSON.stringify(subject.host)}`);
  return ALLOW;
}

/**
 * Whether `identity` may send this message on `path` (a call it was allowed to make). Renew, Release,
 * Quiesce and Thaw of a token that is not active pass: the service answers NOT_FOUND or FAILED_PRECONDITION
 * as for anyone.
 */
export function authorizeMessage(path: string, identity: Identity, message: unknown, ctx: MessageContext): Decision {
  const m = (message ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  // Before the admin pass: an admin renews its own certificates only, like everyone.
  if (path === RENEW_METHOD) return authorizeRenewal(identity, ctx.certificateOwner?.(str(m.serial)));
  if (identity.role === 'admin' || isOpenMethod(path)) return ALLOW;
  const hostOf = (v: unknown) => str(v) || ctx.defaultHost;
  const vmIdentity = (vm: string) => ctx.vmIdentity?.(vm) ?? vm;
  switch (path) {
    case '/headroom.v1.TokenService/Acquire':
      return authorizeToken(
        identity,
        { kind: tokenKind.show(m.kind), host: hostOf(m.host), vm: str(m.vm) },
        vmIdentity,
      );
    case '/headroom.v1.TokenService/Renew':
    case '/headroom.v1.TokenService/Release':
    case '/headroom.v1.TokenService/Quiesce':
    case '/headroom.v1.TokenService/Thaw': {
      const lease = ctx.lease(str(m.tokenId));
      return lease ? authorizeToken(identity, lease, vmIdentity) : ALLOW;
    }
    case SESSION_METHOD: {
      const hello = m.hello as Record<string, unknown> | null | undefined;
      if (!hello || identity.role !== 'agent') return ALLOW;
      const vm = str(hello.vm);
      const host = hostOf(hello.host);
      if (vmIdentity(vm) !== vmIdentity(identity.vm) || host !== identity.host) {
        return deny(
          `${describeIdentity(identity)} may hold the session of its own VM only, not of vm ${JSON.stringify(vm)} on host ${JSON.stringify(host)}`,
        );
      }
      return ALLOW;
    }
    default:
      if (HOST_READ_METHODS.has(path) && identity.role === 'host') {
        // The history of every host is asked for with no host: a host names its own.
        const host = path.endsWith('/GetPolicy') ? hostOf(m.host) : str(m.host);
        if (host === identity.host) return ALLOW;
        return deny(
          `${describeIdentity(identity)} may read ${methodName(path)} of its own host only, not of ${host ? JSON.stringify(host) : 'every host'}: give host ${JSON.stringify(identity.host)}`,
        );
      }
      return authorizeCall(path, identity);
  }
}

/**
 * Whether `identity` may renew a certificate of `owner`: only its own. An unknown serial passes, and the
 * service answers NOT_FOUND as for anyone.
 */
export function authorizeRenewal(identity: Identity, owner: Identity | undefined): Decision {
  // The URIs, not the descriptions: names may hold '@', and the URI's segments are escaped.
  if (!owner || identityUri(owner) === identityUri(identity)) return ALLOW;
  return deny(
    `${describeIdentity(identity)} may renew its own certificates only, not a certificate of ${describeIdentity(owner)}`,
  );
}
