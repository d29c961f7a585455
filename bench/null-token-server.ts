/**
 * The floor for `npm run bench:grant -- --server null`: a gRPC server with the coordinator's TokenService
 * contract and its server options that answers every Acquire with GRANTED at once and every Release with
 * OK. No lessor, no store, no validation. Whatever acquire latency the clients measure against it is
 * what the clients, grpc-js and this machine cost before the coordinator does any work.
 *
 * Takes the coordinator's command line (only --listen matters) and prints "listening on HOST:PORT" like it.
 */
import * as grpc from '@grpc/grpc-js';
import { SERVER_OPTIONS } from '../common/client/connection';
import { headroomV1 } from '../proto';
import type * as v1 from '../proto/generated/headroom/v1';

const listenAt = process.argv.indexOf('--listen');
const listen = listenAt >= 0 ? process.argv[listenAt + 1] : '127.0.0.1:0';
let fencing = 0;

// Only what a backup's token cycle calls; grpc-js answers anything else UNIMPLEMENTED.
const handlers: Pick<v1.TokenServiceHandlers, 'Acquire' | 'Renew' | 'Release'> = {
  Acquire(call) {
    const r = call.request;
    const now = Date.now();
    fencing++;
    call.write({
      granted: {
        tokenId: `null-${fencing}`,
        fencing,
        kind: r.kind,
        host: r.host,
        vm: r.vm,
        job: r.job,
        grantedUnixMs: now,
        expiresUnixMs: now + 30_000,
        ttlMs: 30_000,
      },
    });
    call.end();
  },
  Renew(_call, callback) {
    callback(null, { expiresUnixMs: Date.now() + 30_000, ttlMs: 30_000 });
  },
  Release(_call, callback) {
    callback(null, {});
  },
};

const server = new grpc.Server(SERVER_OPTIONS);
server.addService(headroomV1.TokenService.service, handlers);
server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`null-token-server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`listening on ${listen.replace(/:\d+$/, `:${port}`)}\n`);
});
// The bench signals the start and end of each measured window with SIGUSR2 (for the coordinator's probe).
process.on('SIGUSR2', () => {});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
