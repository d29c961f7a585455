/**
 * Fuzzing the coordinator's wire from its own descriptor: every method of every headroom.v1 service (so
 * a new method or field is fuzzed without a test change), fast-check arbitraries for each request type
 * (valid encodings with hostile values: unknown enum numbers, huge numbers, empty and oversized strings,
 * long lists), a client that sends any bytes as a request, and the rule every answer must keep.
 */
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import * as protobuf from 'protobufjs';
import { wireName } from '../../../coordinator/rpc/validate';
import { packageDefinition } from '../../../proto';
import descriptor = require('../../../proto/generated/descriptor.json');

export const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);

export interface FuzzMethod {
  /** `/headroom.v1.TokenService/Acquire` */
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestType: protobuf.Type;
  /** Decodes an answer with the real contract, so a malformed answer fails the test. */
  responseDeserialize(bytes: Buffer): unknown;
}

/** Every method of every headroom.v1 service, from the loaded package definition. */
export function headroomMethods(): FuzzMethod[] {
  const methods: FuzzMethod[] = [];
  for (const [name, entry] of Object.entries(packageDefinition)) {
    if (!name.startsWith('headroom.v1.') || 'format' in entry) continue; // messages and enums have a format
    const service = entry as Record<
      string,
      grpc.MethodDefinition<unknown, unknown> & { requestType: { type: { name: string } } }
    >;
    for (const m of Object.values(service)) {
      methods.push({
        path: m.path,
        requestStream: m.requestStream,
        responseStream: m.responseStream,
        requestType: root.lookupType(`headroom.v1.${m.requestType.type.name}`),
        responseDeserialize: m.responseDeserialize,
      });
    }
  }
  return methods;
}

// Mostly names the coordinator accepts (so that requests get past the first check and reach deeper
// code), else values on edges: empty, the longest valid name and one past it, control characters,
// characters outside the name pattern, a 64 KiB string, and arbitrary (also invalid UTF-16) strings.
const hostileString = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.oneof(
      fc.constantFrom('host-a', 'vm-1', 'vm-2', 'restic'),
      fc.stringMatching(/^[a-z0-9][a-z0-9._:@-]{0,12}$/),
    ),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      'a'.repeat(128),
      'a'.repeat(129),
      'x\u0000y',
      '../../etc/passwd',
      'é',
      ' ',
      '-lead',
      '0 3 * * *',
      '* * * * * *',
      '*/5 * * * *',
      '0 0 31 2 *',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('\ud800', '\udfff', 'a'), maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constant('z'.repeat(64 * 1024)) },
);

const U64_EDGES = ['0', '1', '4294967296', '9007199254740991', '9007199254740993', '18446744073709551615'];

/** Mostly small values (plausible durations, counts, priorities), else edges, else the whole range. */
function number(small: fc.Arbitrary<unknown>, edges: unknown[], whole: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc.oneof(
    { weight: 3, arbitrary: small },
    { weight: 1, arbitrary: fc.constantFrom(...edges) },
    { weight: 1, arbitrary: whole },
  );
}

function scalar(type: string): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string':
      return hostileString;
    case 'bool':
      return fc.boolean();
    case 'double':
    case 'float':
      return number(
        fc.double({ min: 0, max: 1e9, noNaN: true }),
        [NaN, Infinity, -Infinity, -0, -1, 1e308],
        fc.double(),
      );
    case 'int32':
    case 'sint32':
    case 'sfixed32':
      return number(fc.integer({ min: -1000, max: 1000 }), [-(2 ** 31), 2 ** 31 - 1, 0, -1], fc.integer());
    case 'uint32':
    case 'fixed32':
      return number(fc.nat(120_000), [0, 1, 2 ** 32 - 1], fc.nat(2 ** 32 - 1));
    case 'uint64':
    case 'fixed64':
      return number(fc.nat(1_000_000), U64_EDGES, fc.bigInt(0n, 2n ** 64n - 1n).map(String));
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return number(
        fc.integer({ min: -1000, max: 1_000_000 }),
        U64_EDGES.slice(0, 5),
        fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n).map(String),
      );
    case 'bytes':
      return fc.uint8Array({ maxLength: 64 });
    default:
      throw new Error(`no arbitrary for scalar type ${type}`);
  }
}

function fieldValue(field: protobuf.Field, depth: number): fc.Arbitrary<unknown> {
  const resolved = field.resolve().resolvedType;
  let single: fc.Arbitrary<unknown>;
  if (resolved instanceof protobuf.Enum) {
    // Known names, and numbers the contract does not define (a newer or hostile peer).
    single = fc.oneof(fc.constantFrom(...Object.keys(resolved.values)), fc.integer({ min: -3, max: 1_000 }));
  } else if (resolved instanceof protobuf.Type) {
    single = depth > 3 ? fc.constant({}) : messageObject(resolved, depth + 1);
  } else {
    single = scalar(field.type);
  }
  if (!field.repeated) return single;
  // Mostly short lists, sometimes longer than any limit the coordinator sets on them.
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(single, { maxLength: 4 }) },
    { weight: 1, arbitrary: fc.array(single, { minLength: 257, maxLength: 300 }) },
  );
}

/** A plain object for `type`: any subset of its fields, at most one member of each oneof. */
export function messageObject(type: protobuf.Type, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const inOneof = new Set(
    type.oneofsArray.filter((o) => !o.name.startsWith('_')).flatMap((o) => o.fieldsArray.map((f) => f.name)),
  );
  const plain = type.fieldsArray.filter((f) => !inOneof.has(f.name));
  const record = fc.record(Object.fromEntries(plain.map((f) => [f.name, fieldValue(f, depth)])), { requiredKeys: [] });
  const oneofs = type.oneofsArray
    .filter((o) => !o.name.startsWith('_'))
    .map((o) => fc.option(fc.oneof(...o.fieldsArray.map((f) => fieldValue(f, depth).map((v) => ({ [f.name]: v }))))));
  return fc.tuple(record, ...oneofs).map(([base, ...chosen]) => Object.assign({}, base, ...chosen.filter(Boolean)));
}

/** Encoded requests of `type`: valid protobuf, hostile values. */
export function encodedRequest(type: protobuf.Type): fc.Arbitrary<Buffer> {
  return messageObject(type).map((o) => Buffer.from(type.encode(type.fromObject(o)).finish()));
}

/** A client of every method that sends its argument's bytes as they are, and decodes answers for real. */
export function rawClient(address: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    // Our own limit would stop oversized requests on this side; the server's is the one under test.
    'grpc.max_send_message_length': -1,
    'grpc.use_local_subchannel_pool': 1,
    ...options,
  });
}

export interface Answer {
  code: grpc.status;
  details: string;
  messages: number;
}

const passBytes = (b: Buffer) => b;

/**
 * Calls `method` with `payloads` as its request messages (one, unless it is a client stream) and resolves
 * with the status and how many answers decoded. A call still open after `settleMs` (a stream, a waiting
 * acquire) is cancelled: CANCELLED then means the server was still serving it. A unary call runs until
 * its answer or `deadlineMs`.
 */
export function callRaw(
  client: grpc.Client,
  method: FuzzMethod,
  payloads: Buffer[],
  settleMs = 300,
  deadlineMs = 10_000,
): Promise<Answer> {
  return new Promise((resolve) => {
    let messages = 0;
    let settled = false;
    const done = (code: grpc.status, details: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, details, messages });
    };
    const decode = (bytes: Buffer) => {
      method.responseDeserialize(bytes);
      messages++;
    };
    const deadline = new Date(Date.now() + deadlineMs);
    let cancel = () => {};
    const timer = setTimeout(() => cancel(), settleMs);
    if (!method.requestStream && !method.responseStream) {
      // Unary calls run to their answer (or deadline): nothing to cancel.
      client.makeUnaryRequest(method.path, passBytes, passBytes, payloads[0], { deadline }, (err, res) => {
        if (res) decode(res);
        done(err ? err.code : grpc.status.OK, err ? err.details : '');
      });
      return;
    }
    const stream: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer> = method.requestStream
      ? client.makeBidiStreamRequest(method.path, passBytes, passBytes, { deadline })
      : client.makeServerStreamRequest(method.path, passBytes, passBytes, payloads[0], { deadline });
    stream.on('data', decode);
    stream.on('status', (s: grpc.StatusObject) => done(s.code, s.details));
    stream.on('error', () => {}); // the status event carries it
    if (method.requestStream) {
      const duplex = stream as grpc.ClientDuplexStream<Buffer, Buffer>;
      for (const p of payloads) duplex.write(p);
      duplex.end();
    }
    cancel = () => stream.cancel();
  });
}

/**
 * Why an answer breaks the rule, or undefined when it keeps it: never INTERNAL or UNKNOWN (a client's
 * bytes are never the coordinator's fault), never UNAVAILABLE (it is up) or UNIMPLEMENTED (the method
 * exists), and INVALID_ARGUMENT names a field of the request (its wire name, nested as `a.b[2].c`) or
 * `request` for bytes that are not a message.
 */
export function breaksRule(method: FuzzMethod, answer: Answer): string | undefined {
  const bad = [grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.UNAVAILABLE, grpc.status.UNIMPLEMENTED];
  if (bad.includes(answer.code)) return `${grpc.status[answer.code]}: ${answer.details}`;
  if (answer.code !== grpc.status.INVALID_ARGUMENT) return undefined;
  const m = /^([a-z0-9_.[\]]+): \S/.exec(answer.details);
  if (!m) return `INVALID_ARGUMENT without a field: ${answer.details}`;
  if (m[1] === 'request') return undefined;
  if (!namesField(method.requestType, m[1]))
    return `INVALID_ARGUMENT names ${m[1]}, not a field of ${method.requestType.name}: ${answer.details}`;
  return undefined;
}

function namesField(type: protobuf.Type, path: string): boolean {
  let current: protobuf.Type | undefined = type;
  for (const segment of path.split('.')) {
    const name = segment.replace(/\[\d+\]$/, '');
    if (!current) return false;
    const field: protobuf.Field | undefined = current.fieldsArray.find((f) => wireName(f.name) === name);
    // A oneof (AgentMessage's `body`) is named when none of its members was sent.
    if (!field) return current.oneofsArray.some((o) => o.name === name);
    const resolved: protobuf.Type | protobuf.Enum | null = field.resolve().resolvedType;
    current = resolved instanceof protobuf.Type ? resolved : undefined;
  }
  return true;
}
