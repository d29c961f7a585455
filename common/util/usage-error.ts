/** Thrown when a command line is wrong (unknown option, missing argument): each executable exits EX_USAGE. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
