/**
 * An HTTP/2 client written frame by frame, for what no real client does: opening more streams than the
 * server's SETTINGS_MAX_CONCURRENT_STREAMS (Node's and grpc-js's clients queue them instead). It speaks
 * only what the test needs: the preface, SETTINGS and its ACK, HEADERS with literal (unindexed, not
 * Huffman-coded) fields, and it reads back the SETTINGS and GOAWAY frames.
 */
import * as net from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const HEADERS = 0x1;
const SETTINGS = 0x4;
const GOAWAY = 0x7;
const END_HEADERS = 0x4;
const ACK = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal header field without indexing, new name; names and values under 127 bytes. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([
    Buffer.from([0, name.length]),
    Buffer.from(name),
    Buffer.from([value.length]),
    Buffer.from(value),
  ]);
}

export interface RawHttp2 {
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS, once its SETTINGS frame came. */
  maxConcurrentStreams: Promise<number | undefined>;
  /** Opens a gRPC call to `path` and sends nothing more on it (the stream stays open). Returns its id. */
  openStream(path: string): number;
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>;
  /** The server's GOAWAY, if one came: the last stream it processed, and its error code. */
  goaway(): { lastStreamId: number; code: number } | undefined;
  close(): void;
}

export function rawHttp2(address: string): RawHttp2 {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(':')),
    Number(address.slice(address.lastIndexOf(':') + 1)),
  ];
  const socket = net.connect(port, host);
  socket.on('error', () => {});
  socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0))]));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let goaway: { lastStreamId: number; code: number } | undefined;
  let nextId = 1;
  let buffered = Buffer.alloc(0);
  let settled: (max: number | undefined) => void;
  const maxConcurrentStreams = new Promise<number | undefined>((resolve) => (settled = resolve));
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const [type, flags] = [buffered[3], buffered[4]];
      const payload = buffered.subarray(9, 9 + length);
      buffered = buffered.subarray(9 + length);
      if (type === SETTINGS && !(flags & ACK)) {
        let max: number | undefined;
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          if (payload.readUInt16BE(i) === SETTINGS_MAX_CONCURRENT_STREAMS) max = payload.readUInt32BE(i + 2);
        }
        socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        settled(max);
      } else if (type === GOAWAY)
        goaway = { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
    }
  });
  return {
    maxConcurrentStreams,
    openStream(path) {
      const id = nextId;
      nextId += 2;
      const block = Buffer.concat([
        literal(':method', 'POST'),
        literal(':scheme', 'http'),
        literal(':path', path),
        literal(':authority', address),
        literal('content-type', 'application/grpc'),
        literal('te', 'trailers'),
      ]);
      socket.write(frame(HEADERS, END_HEADERS, id, block));
      return id;
    },
    closed,
    goaway: () => goaway,
    close: () => socket.destroy(),
  };
}
