/**
 * A token holder cut off by the partition test, run inside its network namespace once the link is back:
 * presents its old token (id and fencing number) to Renew and Release over TLS and prints, as one JSON
 * line, the status code and details each call got.
 *
 * Usage: stale-holder.js ADDRESS CA_FILE TOKEN_ID FENCING
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { connect, unary } from '../../../common/client/connection';

async function statusOf(call: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await call;
    return { code: grpc.status.OK, details: '' };
  } catch (e) {
    return { code: (e as grpc.ServiceError).code, details: (e as grpc.ServiceError).details };
  }
}

async function main(): Promise<void> {
  const [address, caFile, tokenId, fencing] = process.argv.slice(2);
  const clients = connect(address, grpc.credentials.createSsl(fs.readFileSync(caFile)));
  const ref = { tokenId, fencing: Number(fencing) };
  const renew = await statusOf(unary(clients.token.Renew.bind(clients.token), ref));
  const release = await statusOf(
    unary(clients.token.Release.bind(clients.token), {
      ...ref,
      outcome: { success: false, exitCode: 75, durationMs: 0, bytes: 0, message: 'stale' },
    }),
  );
  clients.close();
  process.stdout.write(`${JSON.stringify({ renew, release })}\n`);
}

main().catch((e) => {
  process.stderr.write(`stale holder: ${(e as Error).message}\n`);
  process.exit(1);
});
