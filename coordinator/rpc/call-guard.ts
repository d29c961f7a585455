/**
 * What every call to the coordinator's own services passes before its handler: a request that decodes
 * as its message type (else INVALID_ARGUMENT, not grpc-js's INTERNAL), and the per-method caps of limits.ts
 * (else RESOURCE_EXHAUSTED). A server interceptor plus a wrapper for the services' deserializers. The
 * per-connection bound is HTTP/2's (MAX_STREAMS_PER_CONNECTION, advertised by the server and enforced by
 * the transport): a connection's streaming calls are among its HTTP/2 streams, so a count of them here
 * could never pass it.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import { InvalidArgumentError } from '../domain/errors';
import { MAX_CONCURRENT_CALLS } from './limits';
import { toServiceError } from './status';

/** What a stream still open when the coordinator stops is told. */
export const STOPPING = 'the coordinator is stopping';

/** Stands in for a request whose bytes are not a valid message, so that the interceptor can refuse it. */
class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** RESOURCE_EXHAUSTED, for the limits of this module and of the streams' own backlogs. Not a domain error: no operation was refused, the caller was. */
export function resourceExhausted(details: string): grpc.StatusObject {
  return { code: grpc.status.RESOURCE_EXHAUSTED, details, metadata: new grpc.Metadata() };
}

/**
 * The service definition with deserializers that never throw: grpc-js answers a request it cannot
 * decode with INTERNAL, which would blame the coordinator for the client's bytes.
 */
export function decodingGuarded(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(service).map(([name, method]) => {
      const deserialize = method.requestDeserialize;
      const requestDeserialize = (bytes: Buffer) => {
        try {
          return deserialize(bytes);
        } catch (e) {
          return new UndecodableRequest((e as Error).message);
        }
      };
      return [name, { ...method, requestDeserialize }];
    }),
  );
}

/** Counts open streaming calls per method, refuses those beyond the caps, and ends them all at a stop. */
export class CallGuard {
  private readonly perMethod = new Map<string, number>();
  /** What ends each open streaming call: sessions and watches never end by themselves. */
  private readonly open = new Set<() => void>();

  constructor(private readonly log: Logger) {}

  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    const streaming = method.requestStream || method.responseStream;
    let release: (() => void) | undefined;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        if (streaming) {
          const slot = this.admit(method.path);
          if (typeof slot === 'string') {
            this.log.warn('refusing a stream', { method: method.path, peer: call.getPeer(), reason: slot });
            call.sendStatus(resourceExhausted(slot));
            return;
          }
          const end = () => {
            slot();
            this.open.delete(end);
            call.sendStatus({ code: grpc.status.UNAVAILABLE, details: STOPPING, metadata: new grpc.Metadata() });
          };
          this.open.add(end);
          release = () => {
            slot();
            this.open.delete(end);
          };
        }
        next({
          onReceiveMessage: (message, pass) => {
            if (!(message instanceof UndecodableRequest)) return pass(message);
            const error = new InvalidArgumentError(
              'request',
              `is not a valid ${method.path} request message (${message.reason})`,
            );
            call.sendStatus({
              ...toServiceError(error, this.log, method.path),
              metadata: new grpc.Metadata(),
            } as grpc.StatusObject);
          },
          onCancel: () => release?.(),
        });
      },
      sendStatus: (status, pass) => {
        release?.();
        pass(status);
      },
    });
  };

  /**
   * Ends every open streaming call with UNAVAILABLE: the coordinator is stopping, and its clients reconnect
   * (to it once it is back, or to another) with their usual backoff.
   */
  endAll(): void {
    for (const end of [...this.open]) end();
  }

  /** Takes a slot for a stream, or says why there is none. The returned function gives it back (once). */
  private admit(path: string): (() => void) | string {
    const cap = MAX_CONCURRENT_CALLS[path];
    const ofMethod = this.perMethod.get(path) ?? 0;
    if (cap !== undefined && ofMethod >= cap) return `at most ${cap} concurrent ${path} calls`;
    this.perMethod.set(path, ofMethod + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.perMethod.set(path, (this.perMethod.get(path) ?? 1) - 1);
    };
  }
}
