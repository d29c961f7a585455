/**
 * The agent's typed errors: what the command line turns into sysexits codes.
 */

/** Thrown when agent.yaml cannot be read or is invalid; `problems` holds every one, each naming the file and key. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Thrown when the command line is wrong (unknown option, missing argument); exit 64. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
