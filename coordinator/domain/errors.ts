/**
 * Typed domain errors. Each carries its context as readonly fields; rpc/status.ts maps them to gRPC
 * status codes in one table.
 */

export abstract class DomainError extends Error {
  override readonly name: string = this.constructor.name;
}

/** A request field is missing, malformed or out of range. `field` is the wire name. */
export class InvalidArgumentError extends DomainError {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** No active token has this id (it never existed, or it ended and was forgotten). */
export class TokenNotFoundError extends DomainError {
  constructor(readonly tokenId: string) {
    super(`no token ${tokenId}`);
  }
}

/** The token ended (released, expired or revoked); its holder must stop. */
export class TokenEndedError extends DomainError {
  constructor(
    readonly tokenId: string,
    readonly state: string,
  ) {
    super(`token ${tokenId} was ${state}`);
  }
}

/** Renew or release presented a fencing number that is not the token's: a stale or confused holder. */
export class StaleFencingTokenError extends DomainError {
  constructor(
    readonly tokenId: string,
    readonly expected: number,
    readonly got: number,
  ) {
    super(`token ${tokenId}: stale fencing number ${got} (current is ${expected})`);
  }
}

/** The host is not known to the coordinator. */
export class HostNotFoundError extends DomainError {
  constructor(readonly host: string) {
    super(`no host ${host}`);
  }
}

/** A request id was reused with different parameters. */
export class RequestConflictError extends DomainError {
  constructor(
    readonly requestId: string,
    readonly detail: string,
  ) {
    super(`request_id ${requestId} was already used for ${detail}`);
  }
}

/** The durable store could not commit; nothing was acknowledged. */
export class StoreUnavailableError extends DomainError {
  /** `store`: what could not be written, as the store names itself ('the database', 'etcd'). */
  constructor(cause: unknown, store = 'the database') {
    super(
      store === 'the database'
        ? 'the coordinator cannot write its database; nothing was changed'
        : `the coordinator cannot commit to ${store}; nothing was changed: call again shortly`,
      { cause },
    );
  }
}

/** The coordinator is stopping (SIGTERM): nothing was changed; the caller retries with the next one. */
export class CoordinatorStoppingError extends DomainError {
  constructor() {
    super('the coordinator is stopping; nothing was changed: retry with the same request');
  }
}

/** Quiesce/Thaw named a token whose guest cannot be quiesced: only a HYPERVISOR token of one VM can. */
export class NotQuiescableError extends DomainError {
  constructor(
    readonly tokenId: string,
    readonly why: string,
  ) {
    super(`token ${tokenId} cannot quiesce a guest: ${why}`);
  }
}

/** The snapshot catalog cannot be used: no backup directory is configured, or it is not a catalog. */
export class BackupCatalogUnavailableError extends DomainError {
  constructor(detail: string) {
    super(detail);
  }
}

/** The catalog holds no backup with this id. */
export class BackupNotFoundError extends DomainError {
  constructor(readonly id: string) {
    super(`no backup ${id} in the catalog`);
  }
}

/** The coordinator cannot start a backup of this VM itself: no driver is configured for it, or no way to call itself. */
export class BackupRunnerUnavailableError extends DomainError {
  constructor(detail: string) {
    super(detail);
  }
}

/** A backup of the VM that the coordinator started is still running. */
export class BackupRunConflictError extends DomainError {
  constructor(
    readonly vm: string,
    readonly runId: string,
  ) {
    super(`a backup of ${vm} is already running (run ${runId}): cancel it first or wait for it to end`);
  }
}

/** No backup of the VM started by the coordinator is running. */
export class BackupRunNotFoundError extends DomainError {
  constructor(readonly vm: string) {
    super(`no backup of ${vm} started by the coordinator is running`);
  }
}
