/**
 * Enforces the access rule (authorizer.ts) on every call of the server, as one gRPC server interceptor:
 * reads the caller's identity from its verified client certificate, refuses revoked certificates, checks
 * the method and then every message, and closes a certificate's open calls the moment it is revoked.
 * Every refusal is logged with the method, the peer and the reason, and answered through rpc/status.ts.
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
import { type Identity, describeIdentity, identityOfCertificate } from '../pki/identity';

export interface AuthInterceptorOptions {
  log: Logger;
  context: MessageContext;
  /** Revocations and their notifications; absent with a CA the coordinator does not run (tls.clientCaFile). */
  authority?: Authority;
}

type Caller = { identity: Identity; serial: string } | { error: UnauthenticatedError };

function callerOf(cert: PeerCertificate | undefined, authority: Authority | undefined): Caller {
  if (!cert)
    return { error: new UnauthenticatedError("a client certificate issued by this coordinator's CA is required") };
  const serial = cert.serialNumber.toLowerCase();
  if (authority?.isRevoked(serial)) return { error: new UnauthenticatedError(`certificate ${serial} was revoked`) };
  try {
    return { identity: identityOfCertificate(cert), serial };
  } catch (e) {
    return { error: new UnauthenticatedError(`certificate ${serial}: ${(e as Error).message}`) };
  }
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
    const caller = callerOf(call.getAuthContext().sslPeerCertificate, authority);
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
        ...('identity' in caller ? { identity: describeIdentity(caller.identity), serial: caller.serial } : {}),
      });
      intercepting.sendStatus(toServiceError(error, log, method) as grpc.StatusObject);
    };
    const denied = (d: Decision) => (d.allow ? undefined : new PermissionDeniedError(d.reason));

    const intercepting: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        const early = 'error' in caller ? caller.error : denied(authorizeCall(path, caller.identity));
        if (early) {
          // Swallow whatever the client sends: the handler never sees this call.
          next({ onReceiveMessage: () => {}, onReceiveHalfClose: () => {} });
          refuse(early);
          return;
        }
        const { identity, serial } = caller as { identity: Identity; serial: string };
        const calls = open.get(serial) ?? new Set();
        open.set(serial, calls);
        calls.add(refuse);
        untrack = () => {
          calls.delete(refuse);
          if (calls.size === 0 && open.get(serial) === calls) open.delete(serial);
        };
        next({
          onReceiveMessage: (message, pass) => {
            if (ended) return;
            const error = denied(authorizeMessage(path, identity, message, context));
            if (error) refuse(error);
            else pass(message);
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
