/** handler.ts: every service's handlers answer errors through status.ts's one table, once. */
import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../../../common/util/log';
import { InvalidArgumentError } from '../../../../coordinator/domain/errors';
import { stream, unary } from '../../../../coordinator/rpc/handler';

const PATH = '/headroom.v1.TestService/Call';

function recordingLog() {
  const lines: string[] = [];
  return { log: createLogger({ level: 'error', write: (line) => lines.push(line) }), lines };
}

/** Runs a unary handler on a fake call and resolves with what it passed to the callback. */
function callUnary<Req, Res>(handler: grpc.handleUnaryCall<Req, Res>, request: Req) {
  return new Promise<{ error: Partial<grpc.ServiceError> | null; response?: Res | null }>((resolve) => {
    const call = { request, getPath: () => PATH } as unknown as grpc.ServerUnaryCall<Req, Res>;
    handler(call, (error, response) => resolve({ error: error as Partial<grpc.ServiceError> | null, response }));
  });
}

/** A stand-in for a server stream: records the errors emitted on it. */
function fakeStream() {
  const call = Object.assign(new EventEmitter(), { getPath: () => PATH, writableEnded: false });
  const errors: Partial<grpc.ServiceError>[] = [];
  call.on('error', (e: Partial<grpc.ServiceError>) => errors.push(e));
  return { call: call as unknown as grpc.ServerWritableStream<unknown, unknown>, errors, raw: call };
}

describe('RPC handlers (handler.ts)', () => {
  it('unary: answers with the function’s result, sync or async', async () => {
    const { log } = recordingLog();
    assert.deepEqual(
      await callUnary(
        unary(log, (req: { n: number }) => ({ twice: req.n * 2 })),
        { n: 2 },
      ),
      { error: null, response: { twice: 4 } },
    );
    assert.deepEqual(
      await callUnary(
        unary(log, async (req: { n: number }) => ({ twice: req.n * 2 })),
        { n: 3 },
      ),
      { error: null, response: { twice: 6 } },
    );
  });

  it('unary: maps a domain error through the status table, naming the field', async () => {
    const { log, lines } = recordingLog();
    const { error } = await callUnary(
      unary(log, () => {
        throw new InvalidArgumentError('vm', 'is required');
      }),
      {},
    );
    assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
    assert.match(String(error?.details), /vm/);
    assert.deepEqual(lines, []);
  });

  it('unary: an unknown error becomes a generic INTERNAL, logged with the call path, its text never sent', async () => {
    const { log, lines } = recordingLog();
    const { error } = await callUnary(
      unary(log, async () => {
        throw new Error('secret database path /var/x');
      }),
      {},
    );
    assert.equal(error?.code, grpc.status.INTERNAL);
    assert.doesNotMatch(String(error?.details), /secret/);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /secret database path/);
    assert.ok(lines[0].includes(PATH));
  });

  it('stream: a throw while setting up, a rejected promise, or a later fail() end the call with the mapped status, once', async () => {
    const { log } = recordingLog();
    const thrown = fakeStream();
    stream(log, () => {
      throw new InvalidArgumentError('host', 'bad');
    })(thrown.call);
    assert.deepEqual(
      thrown.errors.map((e) => e.code),
      [grpc.status.INVALID_ARGUMENT],
    );

    const rejected = fakeStream();
    stream(log, async () => {
      throw new InvalidArgumentError('host', 'bad');
    })(rejected.call);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      rejected.errors.map((e) => e.code),
      [grpc.status.INVALID_ARGUMENT],
    );

    const later = fakeStream();
    let fail: ((e: unknown) => void) | undefined;
    stream(log, (_call, f) => {
      fail = f;
    })(later.call);
    assert.equal(later.errors.length, 0);
    fail!(new InvalidArgumentError('host', 'bad'));
    fail!(new Error('a second failure'));
    assert.deepEqual(
      later.errors.map((e) => e.code),
      [grpc.status.INVALID_ARGUMENT],
    );
  });

  it('stream: a failure after the stream ended is dropped', () => {
    const { log } = recordingLog();
    const ended = fakeStream();
    let fail: ((e: unknown) => void) | undefined;
    stream(log, (_call, f) => {
      fail = f;
    })(ended.call);
    ended.raw.writableEnded = true;
    fail!(new Error('too late'));
    assert.deepEqual(ended.errors, []);
  });
});
