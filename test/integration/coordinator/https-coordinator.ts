/**
 * A coordinator whose HTTP listener is off loopback: on the root side of a veth pair into a network
 * namespace made for the test (test/helpers/netns.ts), so HTTPS with its PKI's certificates, and nothing
 * listens on a real network. Shared by the HTTP listener's and the dashboard's TLS tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createLogger } from '../../../common/util/log';
import { initPki } from '../../../coordinator/pki/init';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { requireTool } from '../../helpers/require-tool';
import { type Partition, createPartition } from '../../helpers/netns';

export interface HttpsCoordinator {
  partition: Partition;
  coordinator: RunningCoordinator;
  /** ca.pem, host.pem/.key, admin.pem/.key: `headroomctl pki init`'s files. */
  pkiDir: string;
  stop(): Promise<void>;
}

/** `tag`: a few characters naming the namespace; `subnetSeed` spreads concurrent tests over subnets. Needs root. */
export async function startHttpsCoordinator(tag: string, subnetSeed: number): Promise<HttpsCoordinator> {
  requireTool('ip', 'iproute2');
  const partition = createPartition(`${tag}${process.pid % 1000}`, 1 + ((process.pid + subnetSeed) % 250));
  const dir = tempDir(`headroom-${tag}-`);
  const pkiDir = path.join(dir, 'pki');
  await initPki({
    dir: pkiDir,
    host: 'host-a',
    serverNames: ['localhost', '127.0.0.1', partition.hostAddress],
    admin: 'admin',
    log: createLogger({ level: 'silent' }),
  });
  const config = path.join(dir, 'coordinator.yaml');
  fs.writeFileSync(config, `${TEST_START_POLICY}http:\n  listen: ${partition.hostAddress}:0\n`);
  const coordinator = await startCoordinator({ args: ['--config', config, '--pki-dir', pkiDir] });
  return {
    partition,
    coordinator,
    pkiDir,
    stop: async () => {
      await coordinator.stop();
      partition.remove();
    },
  };
}
