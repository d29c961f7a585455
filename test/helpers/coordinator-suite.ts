/**
 * A real coordinator on loopback for one describe block, with plaintext clients: started before its tests
 * and stopped after them, so that a test file says only which host it wants.
 */
import type { Clients } from '../../common/client/connection';
import { type CoordinatorOptions, type RunningCoordinator, startCoordinator } from './coordinator-process';
import { connectPlain } from './token-client';

export interface CoordinatorSuite {
  /** The running coordinator; throws when read outside the block's tests. */
  readonly coordinator: RunningCoordinator;
  readonly clients: Clients;
}

export function coordinatorSuite(options: CoordinatorOptions): CoordinatorSuite {
  let coordinator: RunningCoordinator | undefined;
  let clients: Clients | undefined;
  before(async () => {
    coordinator = await startCoordinator(options);
    clients = connectPlain(coordinator.address);
  });
  after(async () => {
    clients?.close();
    await coordinator?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the suite coordinator is read before its before() hook ran');
    return value;
  };
  return {
    get coordinator() {
      return started(coordinator);
    },
    get clients() {
      return started(clients);
    },
  };
}
