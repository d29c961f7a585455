/**
 * The one error type for a configuration file that cannot be read or is invalid (agent.yaml,
 * coordinator.yaml, or the coordinator's flags): each executable prints its problems and exits EX_CONFIG.
 */

/** One problem: where it is and what was expected there. */
export interface ConfigProblem {
  /** The key path, such as `jobs[2].window`; empty for the file as a whole. */
  key: string;
  /** What was expected, and what was found. */
  message: string;
  /** Where a YAML syntax error is, 1-based. */
  line?: number;
  column?: number;
}

/** `file: key: message`, or `file:line:column: message` for a syntax error. */
export function formatProblem(file: string, p: ConfigProblem): string {
  const at = p.line !== undefined ? `${file}:${p.line}:${p.column ?? 1}` : file;
  return p.key ? `${at}: ${p.key}: ${p.message}` : `${at}: ${p.message}`;
}

/** Every problem of one configuration, collected before failing. */
export class ConfigError extends Error {
  /** Each problem as the line printed for it, naming the file and the key. */
  readonly problems: readonly string[];

  constructor(
    /** The file (or `command line`) the configuration came from. */
    readonly file: string,
    readonly issues: readonly ConfigProblem[],
  ) {
    const problems = issues.map((p) => formatProblem(file, p));
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
