/**
 * Host, VM, job and id names: what may appear in logs, tables and file names without quoting. One rule for
 * the coordinator (every name on the wire) and the agent (the sources of its freeze notices).
 */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/;
export const MAX_NAME_LENGTH = 128;

export function isValidName(value: string): boolean {
  return value.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(value);
}
