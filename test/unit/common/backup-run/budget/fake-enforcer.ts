/**
 * A hand-written enforcement mechanism for the tests of what drives enforcers (run-budget.ts, the job
 * runner): it records every call, and fails the ones the test says should fail.
 */
import type {
  Budget,
  EnforcedGroup,
  Enforcement,
  EnforcementMechanism,
  Enforcer,
  Usage,
} from '../../../../../common/backup-run/budget/enforcer';
import { EnforcementError } from '../../../../../common/backup-run/budget/enforcer';

export class FakeEnforcer implements Enforcer {
  readonly calls: string[] = [];
  /** Operations that throw, e.g. 'pause'. */
  failing = new Set<string>();
  closed = false;
  used: Usage = { cpuSeconds: 0, ioBytes: 0 };

  constructor(
    readonly group: EnforcedGroup,
    readonly enforcement: Enforcement = 'CGROUP_V1',
    readonly detail = 'fake cgroup /x',
    /** Where the calls are also written, among what else the test records. */
    private readonly journal?: string[],
  ) {}

  private record(call: string, op?: string): void {
    if (op && this.failing.has(op)) throw new EnforcementError(`cannot ${op}`, '/fake/file', 'EIO');
    this.calls.push(call);
    this.journal?.push(call);
  }

  apply(b: Budget): void {
    this.record(`apply cpu=${b.cpuPercent} io=${b.ioBytesPerSec}`, 'apply');
  }
  pause(): void {
    this.record('pause', 'pause');
  }
  resume(): void {
    this.record('resume', 'resume');
  }
  release(): void {
    this.record('release');
  }
  usage(): Usage {
    return { ...this.used };
  }
  async close(): Promise<void> {
    this.record('close');
    this.closed = true;
  }
}

export class FakeMechanism implements EnforcementMechanism {
  readonly enforcers: FakeEnforcer[] = [];
  /** enforce() throws while set. */
  refuse = false;
  fallback?: EnforcementMechanism;
  /** Passed to the enforcers made from now on. */
  journal?: string[];

  constructor(
    readonly enforcement: Enforcement = 'CGROUP_V1',
    readonly detail = 'cgroup v2: not mounted',
  ) {}

  enforce(group: EnforcedGroup): FakeEnforcer {
    if (this.refuse) throw new EnforcementError('cannot create the cgroup', '/fake/headroom-1-2', 'EACCES');
    const e = new FakeEnforcer(group, this.enforcement, undefined, this.journal);
    this.enforcers.push(e);
    return e;
  }
}
