/**
 * The planning thread's entry (plan-worker.ts starts it): answers each PlanRequest with buildPlanView's
 * view, or with what it threw.
 */
import { parentPort } from 'node:worker_threads';
import { InvalidArgumentError } from '../domain/errors';
import { buildPlanView } from './plan-view';
import type { PlanReply, PlanRequest } from './plan-worker';

const port = parentPort;
if (!port) throw new Error('plan-worker-thread.js runs as a worker thread, started by plan-worker.ts');

port.on('message', ({ id, input }: PlanRequest) => {
  let reply: PlanReply;
  try {
    reply = { id, view: buildPlanView(input) };
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    reply = {
      id,
      error: {
        message: error.message,
        ...(error instanceof InvalidArgumentError ? { field: error.field, problem: error.problem } : {}),
      },
    };
  }
  port.postMessage(reply);
});
