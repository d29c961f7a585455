/**
 * Plans hosts on a worker thread, so that planning never holds the coordinator's event loop: a day of 450
 * jobs takes about 125 ms of the planner (up to about 3 s on the storm bench's fullest nights), and grants,
 * renewals and load reports go on meanwhile. One thread serves every host, one plan at a time in the order
 * asked. A thread that fails or exits fails the calls it held and is replaced at the next call.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { InvalidArgumentError } from '../domain/errors';
import type { PlanView, PlanViewInput } from './plan-view';

/** A plan asked of the thread. */
export interface PlanRequest {
  id: number;
  input: PlanViewInput;
}

/** The thread's answer: the view, or what was thrown (an Error's class does not cross threads). */
export type PlanReply =
  { id: number; view: PlanView } | { id: number; error: { message: string; field?: string; problem?: string } };

/** The compiled thread entry beside this module (plan-worker-thread.ts). */
const THREAD_ENTRY = path.join(__dirname, 'plan-worker-thread.js');

export class PlanWorker {
  private worker: Worker | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly waiting = new Map<number, { resolve: (view: PlanView) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;

  /**
   * @param idleMs when set, the thread ends once it has been idle this long (the next call starts another):
   *   a thread keeps the heap of its largest plan, which an occasional caller (GetPlan) need not hold.
   */
  constructor(private readonly idleMs?: number) {}

  /**
   * The host's plan view (plan-view.ts buildPlanView), computed on the thread.
   * @throws InvalidArgumentError as buildPlanView does; Error if the thread failed or the worker is closed.
   */
  plan(input: PlanViewInput): Promise<PlanView> {
    if (this.closed) return Promise.reject(new Error('the planning thread is closed'));
    const id = this.nextId++;
    return new Promise<PlanView>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      clearTimeout(this.idleTimer);
      const worker = this.thread();
      worker.ref();
      worker.postMessage({ id, input } satisfies PlanRequest);
    });
  }

  /** Ends the thread; calls still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('the planning thread was closed'));
    await worker?.terminate();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(THREAD_ENTRY);
    worker.on('message', (reply: PlanReply) => {
      const call = this.waiting.get(reply.id);
      if (!call) return;
      this.waiting.delete(reply.id);
      // An idle thread must not keep the process alive.
      if (this.waiting.size === 0) {
        worker.unref();
        if (this.idleMs !== undefined) this.idleTimer = setTimeout(() => this.retire(worker), this.idleMs).unref();
      }
      if ('view' in reply) call.resolve(reply.view);
      else if (reply.error.field !== undefined)
        call.reject(new InvalidArgumentError(reply.error.field, reply.error.problem ?? ''));
      else call.reject(new Error(reply.error.message));
    });
    const lost = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failAll(new Error(`the planning thread ${why}`));
    };
    worker.on('error', (e) => lost(`failed: ${e.message}`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    this.worker = worker;
    return worker;
  }

  /** Ends an idle thread; its heap goes with it. */
  private retire(worker: Worker): void {
    if (this.worker !== worker || this.waiting.size > 0) return;
    this.worker = undefined;
    void worker.terminate();
  }

  private failAll(e: Error): void {
    for (const call of this.waiting.values()) call.reject(e);
    this.waiting.clear();
  }
}
