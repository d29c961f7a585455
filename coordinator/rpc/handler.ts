/**
 * The one way the coordinator's services build their handlers: the service's function runs, and what it
 * throws (or its promise rejects with) is answered through status.ts's table, so no handler maps errors
 * or calls grpc-js's callback itself. The method in the log is the call's path, as the interceptors log it.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../common/util/log';
import { toServiceError } from './status';

/** A unary call: `fn`'s answer, or its error mapped. */
export function unary<Req, Res>(
  log: Logger,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (res) => callback(null, res),
        (e) => callback(toServiceError(e, log, call.getPath())),
      );
  };
}

/** Ends a streaming call with an error mapped through status.ts. */
export type Fail = (error: unknown) => void;

/**
 * A server-streaming or bidi call. `fn` sets the stream up; what it throws, and what it hands to `fail`
 * later (an error of the work it started), ends the call with the mapped status: once, and never after
 * the stream was ended.
 */
export function stream<
  Call extends grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
>(log: Logger, fn: (call: Call, fail: Fail) => void | Promise<void>): (call: Call) => void {
  return (call) => {
    let failed = false;
    const fail: Fail = (error) => {
      if (failed || call.writableEnded) return;
      failed = true;
      call.emit('error', toServiceError(error, log, call.getPath()));
    };
    // Synchronously, so that the stream's listeners are on before grpc-js delivers its first event.
    try {
      fn(call, fail)?.catch(fail);
    } catch (e) {
      fail(e);
    }
  };
}
