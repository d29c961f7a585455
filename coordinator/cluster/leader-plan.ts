/**
 * A member's own host's plan, as the leader plans it: what the member's hypervisor scheduler starts its runs
 * from (hypervisor-scheduler.ts; on a single host it reads the plan keeper in process). Read with GetPlan
 * through the member's own front door, so from whichever member leads: every few seconds, and at once when
 * the leader changes. While no leader answers, the last plan read is kept, so that a slot due meanwhile is
 * still started (its run waits for its token like any client).
 */
import { type AdminClient, unary } from '../../common/client/connection';
import type { Logger } from '../../common/util/log';
import { tokenKind } from '../../proto/enums';
import type * as v1 from '../../proto/generated/headroom/v1';
import { slotId, type ViewSlot } from '../planning/plan-view';

/** How far ahead the plan is read: the scheduler starts only slots due now. */
const HORIZON_MS = 3_600_000;
/** How often it is read: a replan's move of a slot reaches the scheduler within this. */
const REFRESH_MS = 5_000;

export class LeaderPlan {
  private slots: ViewSlot[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading = false;

  constructor(
    private readonly admin: AdminClient,
    private readonly host: string,
    private readonly log: Logger,
    private readonly refreshMs = REFRESH_MS,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.refresh(), this.refreshMs);
    this.timer.unref();
    this.refresh();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The host's plan as read last; undefined before the first read and for any other host. */
  current(host: string): { slots: readonly ViewSlot[] } | undefined {
    return host === this.host && this.slots ? { slots: this.slots } : undefined;
  }

  /** Reads the plan now (the leader changed), unless a read is under way. */
  refresh(): void {
    if (this.reading) return;
    this.reading = true;
    unary(this.admin.GetPlan.bind(this.admin), { host: this.host, horizonMs: HORIZON_MS, target: '' })
      .then((plan) => (this.slots = plan.slots.map(fromWire)))
      .catch((error: Error) => this.log.debug("cannot read this host's plan from the leader yet", { error }))
      .finally(() => (this.reading = false));
  }
}

function fromWire(s: v1.PlannedSlot__Output): ViewSlot {
  const kind = tokenKind.fromWire(s.kind) ?? 'GUEST';
  return {
    id: slotId(kind, s.vm, s.job, s.earliestStartUnixMs),
    vm: s.vm,
    job: s.job,
    kind,
    start: s.startUnixMs,
    end: s.endUnixMs,
    earliestStart: s.earliestStartUnixMs,
    windowEnd: s.windowEndUnixMs,
    ...(s.target ? { target: s.target, targetIo: s.targetIoBytesPerSec } : {}),
  };
}
