/** What a coordinator's health checks say: grpc.health.v1's Check over plaintext, and the HTTP /healthz. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath } from 'grpc-health-check';

const healthPackage = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { enums: String })) as any;

/** The status Check answers for `service` ('' is the whole server): SERVING, NOT_SERVING, … */
export async function grpcHealth(address: string, service = ''): Promise<string> {
  const client = new healthPackage.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<string>((resolve, reject) =>
      client.check({ service }, { deadline: Date.now() + 10_000 }, (err: Error | null, r: { status: string }) =>
        err ? reject(err) : resolve(r.status),
      ),
    );
  } finally {
    client.close();
  }
}

/** /healthz's status code and text. */
export async function httpHealth(httpUrl: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${httpUrl}/healthz`);
  return { status: response.status, text: await response.text() };
}
