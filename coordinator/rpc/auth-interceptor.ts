/**
 * Enforces the access rule (authorizer.ts) on every call of the server, as one gRPC server interceptor:
 * reads the caller's identity from its verified client certificate, refuses revoked certificates, checks
 * the method and then every message, and closes a certificate's open calls the moment it is revoked.
 * Every refusal is logged with the method, the peer and the reason, and answered through rpc/status.ts.
 *
 * In a cluster a member's front door authenticates the caller (frontDoorInterceptor: a certificate of the
 * CA, not revoked) and forwards the call with the caller's identity in metadata; the leader believes that
 * metadata only from a peer whose own certificate is a member's, and then checks the call and every
 * message as that caller's, here, where the lessor is.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { Logger } from '../../common/util/log';
import { toServiceError } from './status';
import type { Authority } from '../pki/authority';
import {
  type Decision,
  type MessageContext,
  authorizeCall,
  authorizeMessage,
  isOpenMethod,
  methodName,
} from '../pki/authorizer';
import { PermissionDeniedError, UnauthenticatedError } from '../pki/errors';
import {
  type Identity,
  describeIdentity,
  identityOfCertificate,
  identityUri,
  memberOfCertificate,
  parseIdentityUri,
} from '../pki/identity';

/** The identity (headroom:// URI) and certificate serial of the caller a member forwards for. */
export const FORWARDED_FOR = 'x-headroom-forwarded-for';
export const FORWARDED_SERIAL = 'x-headroom-forwarded-serial';

export interface AuthInterceptorOptions {
  log: Logger;
  context: MessageContext;
  /** Revocations and their notifications; absent with a CA the coordinator does not run (tls.clientCaFile). */
  authority?: Authority;
}

type Caller = { identity: Identity; serial: string } | { error: UnauthenticatedError };

function unauthenticated(message: string): { error: UnauthenticatedError } {
  return { error: new UnauthenticatedError(message) };
}

function callerOf(cert: PeerCertificate | undefined, authority: Authority | undefined): Caller {
  if (!cert) return unauthenticated("a client certificate issued by this coordinator's CA is required");
  return checked(cert.serialNumber.toLowerCase(), authority, () => identityOfCertificate(cert));
}

/** The caller of serial `serial`, unless it is revoked or its identity does not parse. */
function checked(serial: string, authority: Authority | undefined, identity: () => Identity): Caller {
  if (authority?.isRevoked(serial)) return unauthenticated(`certificate ${serial} was revoked`);
  try {
    return { identity: identity(), serial };
  } catch (e) {
    return unauthenticated(`certificate ${serial}: ${(e as Error).message}`);
  }
}

/**
 * The caller of a call that arrived with `metadata`: the peer's own identity, or — when the peer is a
 * cluster member (and not revoked) — the caller it forwards for. Anyone else naming a caller is refused,
 * so that no client can speak for another.
 */
function callerWith(cert: PeerCertificate | undefined, metadata: grpc.Metadata, authority?: Authority): Caller {
  const uri = metadata.get(FORWARDED_FOR)[0];
  if (uri === undefined) return callerOf(cert, authority);
  const member = cert ? memberOfCertificate(cert) : undefined;
  if (!cert || member === undefined)
    return unauthenticated(`${FORWARDED_FOR} is accepted from cluster members only, and the caller is none`);
  const peerSerial = cert.serialNumber.toLowerCase();
  if (authority?.isRevoked(peerSerial)) return unauthenticated(`member certificate ${peerSerial} was revoked`);
  const serial = String(metadata.get(FORWARDED_SERIAL)[0] ?? '');
  if (!serial) return unauthenticated(`member ${member} forwarded a call without ${FORWARDED_SERIAL}`);
  return checked(serial, authority, () => parseIdentityUri(String(uri)));
}

export function authInterceptor(options: AuthInterceptorOptions): grpc.ServerInterceptor {
  const { log, context, authority } = options;
  /** Open calls by certificate serial: what to close when one is revoked. */
  const open = new Map<string, Set<(error: UnauthenticatedError) => void>>();
  authority?.onRevoked((revoked) => {
    for (const c of revoked) {
      const calls = open.get(c.serial);
      if (!calls) continue;
      for (const close of [...calls]) close(new UnauthenticatedError(`certificate ${c.serial} was revoked`));
    }
  });

  return (descriptor, call) => {
    const path = descriptor.path;
    if (isOpenMethod(path)) return new grpc.ServerInterceptingCall(call);
    const method = methodName(path);
    const peerCertificate = call.getAuthContext().sslPeerCertificate;
    let caller: Caller | undefined;
    let ended = false;
    let untrack = () => {};
    const refuse = (error: UnauthenticatedError | PermissionDeniedError) => {
      if (ended) return;
      ended = true;
      untrack();
      log.warn('call refused', {
        method,
        code: error instanceof UnauthenticatedError ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED',
        reason: error.message,
        peer: call.getPeer(),
        ...(caller && 'identity' in caller
          ? { identity: describeIdentity(caller.identity), serial: caller.serial }
          : {}),
      });
      intercepting.sendStatus(toServiceError(error, log, method) as grpc.StatusObject);
    };
    const denied = (d: Decision) => (d.allow ? undefined : new PermissionDeniedError(d.reason));

    const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        // The caller is known once the metadata is: a member names the caller it forwards for there.
        let identity: Identity | undefined;
        next({
          onReceiveMetadata: (metadata, pass) => {
            caller = callerWith(peerCertificate, metadata, authority);
            const early = 'error' in caller ? caller.error : denied(authorizeCall(path, caller.identity));
            // Refused: the handler never sees this call, nor whatever the client sends after.
            if (early) return refuse(early);
            identity = (caller as { identity: Identity }).identity;
            const serial = (caller as { serial: string }).serial;
            const calls = open.get(serial) ?? new Set();
            open.set(serial, calls);
            calls.add(refuse);
            untrack = () => {
              calls.delete(refuse);
              if (calls.size === 0 && open.get(serial) === calls) open.delete(serial);
            };
            pass(metadata);
          },
          onReceiveMessage: (message, pass) => {
            if (ended || !identity) return;
            const error = denied(authorizeMessage(path, identity, message, context));
            if (error) refuse(error);
            else pass(message);
          },
          onReceiveHalfClose: (pass) => {
            if (!ended && identity) pass();
          },
          onCancel: () => untrack(),
        });
      },
      sendStatus: (status, next) => {
        ended = true;
        untrack();
        next(status);
      },
    });
    return intercepting;
  };
}

/**
 * A cluster member's front door (cluster/forwarder.ts) checks each caller before it passes the call on: a
 * certificate of the CA, naming an identity, not revoked. It answers the headers that name the caller to
 * the leader (which authorizes the call and every message as that caller), or why the caller is refused.
 * Open methods (enrolment, health, reflection) need no certificate.
 */
export function forwardedCaller(
  path: string,
  cert: PeerCertificate | undefined,
  authority: Authority,
): { headers: Record<string, string> } | { refused: UnauthenticatedError } {
  if (isOpenMethod(path)) return { headers: {} };
  const caller = callerOf(cert, authority);
  if ('error' in caller) return { refused: caller.error };
  return { headers: { [FORWARDED_FOR]: identityUri(caller.identity), [FORWARDED_SERIAL]: caller.serial } };
}
