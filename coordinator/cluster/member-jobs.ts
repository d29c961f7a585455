/**
 * A member's own host's hypervisor jobs, whoever leads: published for the leader to plan (host-jobs.ts),
 * started at the slots of the leader's plan (leader-plan.ts) by the member's own scheduler and runner, whose
 * `headroomctl host-backup` children take their tokens through the member's front door, and answering the
 * leader's backup calls for this host (host-runs.ts). A leader change leaves the runs alone: their tokens
 * survive it like any holder's, and the scheduler remembers the slots it started.
 */
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { clientCredentials, connect } from '../../common/client/connection';
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { CoordinatorOptions } from '../config';
import { HypervisorScheduler } from '../hypervisor-jobs/hypervisor-scheduler';
import type { pkiFiles } from '../pki/state-dir';
import { hostBackupRunner, selfAddress } from '../server';
import type { Registration } from './cluster-view';
import { publishHypervisorJobs } from './host-jobs';
import { serveBackupRuns } from './host-runs';
import { LeaderPlan } from './leader-plan';

export interface MemberJobs {
  /** The leader changed: the plan is read again at once. */
  leaderChanged(): void;
  /** Ends the runs (SIGTERM, bounded wait) while their release can still reach the leader, then the rest. */
  stop(): Promise<void>;
}

export function runMemberJobs(o: {
  options: CoordinatorOptions;
  /** The member's front door, which the runs and the plan reads call. */
  address: string;
  client: Etcd3;
  registration: Pick<Registration, 'put' | 'onRegistered'>;
  prefix: string;
  /** With pki: the admin identity the front door is called with, as a single host's runs call it. */
  pki: ReturnType<typeof pkiFiles> | undefined;
  /** A VM's identity, as this host's placement names it. */
  identityOf(vm: string): string;
  clock: Clock;
  log: Logger;
}): MemberJobs {
  const { options, address, pki } = o;
  const log = o.log.child({ component: 'hypervisor-jobs' });
  const published = publishHypervisorJobs(o.registration, o.prefix, options.host, options.hypervisorJobs, log);
  const runs: { changed?: () => Promise<void> } = {};
  const runner = hostBackupRunner(
    options,
    () => address,
    o.identityOf,
    o.log,
    () => void runs.changed?.(),
  );
  const served = serveBackupRuns({ ...o, host: options.host, runner, log });
  runs.changed = served.changed;
  // Only a member with jobs to run reads the plan, and so needs the identity to call its front door with.
  const self = options.hypervisorJobs.some((j) => j.driver)
    ? connect(
        selfAddress(address),
        pki
          ? clientCredentials(
              selfAddress(address),
              { tls: { caFile: pki.caCert, certFile: pki.adminCert, keyFile: pki.adminKey } },
              log,
            )
          : grpc.credentials.createInsecure(),
      )
    : undefined;
  const plan = self && new LeaderPlan(self.admin, options.host, log);
  const scheduler =
    plan &&
    new HypervisorScheduler({
      plans: plan,
      runner,
      jobs: options.hypervisorJobs,
      host: options.host,
      resolveVm: o.identityOf,
      clock: o.clock,
      log: o.log.child({ component: 'hypervisor-scheduler' }),
    });
  plan?.start();
  scheduler?.start();
  return {
    leaderChanged: () => plan?.refresh(),
    async stop() {
      scheduler?.stop();
      plan?.stop();
      await runner.stop();
      await served.stop();
      published.stop();
      self?.close();
    },
  };
}
