/**
 * The dashboard's memory of each host's load: the last samples the coordinator took of it (host-load-monitor)
 * and the budget changes the budget controller told agents (agent-registry), each in a bounded ring per host,
 * so the page can draw the last hours at once and then follow them over /events. Nothing here is durable:
 * after a restart the strip starts empty, as the load it shows is a moment's.
 */
import type { LoadView } from '../domain/start-gate';

/** Samples kept per host: four hours at the default 10 s report interval (policy reportIntervalMs). */
export const SAMPLES_PER_HOST = 1_440;
/** Budget changes kept per host. */
export const MARKS_PER_HOST = 500;

export interface LoadSample extends Omit<LoadView, 'at'> {
  host: string;
  atUnixMs: number;
}

/** A running guest backup's budget as the budget controller changed it. */
export interface BudgetMark {
  host: string;
  vm: string;
  job: string;
  tokenId: string;
  atUnixMs: number;
  level: 'full' | 'throttled' | 'paused';
  reason: string;
}

export type LoadRingEntry = { sample: LoadSample } | { mark: BudgetMark };

/** A fixed-size ring: adding past `capacity` forgets the oldest. */
class Ring<T> {
  private readonly items: T[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  add(item: T): void {
    if (this.items.length < this.capacity) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Oldest first. */
  list(): T[] {
    return this.items.length < this.capacity
      ? [...this.items]
      : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}

export class LoadRing {
  private readonly samples = new Map<string, Ring<LoadSample>>();
  private readonly marks = new Map<string, Ring<BudgetMark>>();
  private readonly listeners = new Set<(entry: LoadRingEntry) => void>();

  constructor(
    private readonly samplesPerHost = SAMPLES_PER_HOST,
    private readonly marksPerHost = MARKS_PER_HOST,
  ) {}

  addSample(host: string, load: LoadView): void {
    const { at, ...figures } = load;
    const sample: LoadSample = { host, atUnixMs: at, ...figures };
    ringOf(this.samples, host, this.samplesPerHost).add(sample);
    this.tell({ sample });
  }

  addMark(mark: BudgetMark): void {
    ringOf(this.marks, mark.host, this.marksPerHost).add(mark);
    this.tell({ mark });
  }

  /** What is kept of a host, oldest first. */
  of(host: string): { samples: LoadSample[]; marks: BudgetMark[] } {
    return { samples: this.samples.get(host)?.list() ?? [], marks: this.marks.get(host)?.list() ?? [] };
  }

  /** Calls `listener` with each entry as it is added. @returns the unsubscribe function. */
  subscribe(listener: (entry: LoadRingEntry) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private tell(entry: LoadRingEntry): void {
    for (const listener of this.listeners) listener(entry);
  }
}

function ringOf<T>(rings: Map<string, Ring<T>>, host: string, capacity: number): Ring<T> {
  let ring = rings.get(host);
  if (!ring) rings.set(host, (ring = new Ring<T>(capacity)));
  return ring;
}
