/**
 * AgentService.Session: the agent's long-lived stream. The first message must be a hello; the coordinator
 * answers with its settings, then takes load reports (which drive the budgets of the VM's running backups),
 * budget reports and command acks, and pushes commands through the agent registry.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../common/util/clock';
import type { Logger } from '../../common/util/log';
import type { AgentRegistry, AgentSession } from '../service/agent-registry';
import type { Coordinator } from '../service/coordinator';
import type { PlanKeeper } from '../planning/plan-keeper';
import type { QuiesceBroker, QuiesceReport } from '../service/quiesce-broker';
import { foreground } from '../domain/budget-controller';
import { InvalidArgumentError } from '../domain/errors';
import { completePolicy } from '../domain/policy';
import { DEFAULT_FREEZE_HOLD_MS, MAX_FREEZE_HOLD_MS } from '../../common/domain/freeze-hold';
import { resourceExhausted } from './call-guard';
import { HELLO_TIMEOUT_MS, MAX_SESSION_BACKLOG } from './limits';
import { toServiceError } from './status';
import * as validate from './validate';
import { quiesceState } from '../../proto/enums';
import { Enforcement } from '../../proto/generated/headroom/v1/Enforcement';
import type * as v1 from '../../proto/generated/headroom/v1';

const MAX_JOBS = 256;

function validateHello(hello: v1.Hello__Output, defaultHost: string) {
  if (hello.jobs.length > MAX_JOBS) throw new InvalidArgumentError('hello.jobs', `more than ${MAX_JOBS} jobs`);
  hello.jobs.forEach((j, i) => {
    validate.name(`hello.jobs[${i}].name`, j.name);
    validate.text(`hello.jobs[${i}].schedule`, j.schedule, 256);
    // A uint64 past 2^53 decodes inexactly; stored, it would make every later plan of the host fail.
    validate.intIn(`hello.jobs[${i}].declared_cost.io_bytes_per_sec`, j.declaredCost?.ioBytesPerSec ?? 0, 0, Number.MAX_SAFE_INTEGER);
  });
  return {
    vm: validate.name('hello.vm', hello.vm),
    host: validate.name('hello.host', hello.host === '' ? defaultHost : hello.host),
    agentVersion: validate.text('hello.agent_version', hello.agentVersion, 64),
    hostname: validate.text('hello.hostname', hello.hostname, 253),
    jobs: hello.jobs,
  };
}

function validateLoad(load: v1.LoadReport__Output): v1.LoadReport__Output {
  for (const [field, value] of Object.entries(load)) {
    if (typeof value === 'number' && (!Number.isFinite(value) || value < 0)) {
      throw new InvalidArgumentError(`load.${validate.wireName(field)}`, `must be a finite number >= 0, got ${value}`);
    }
  }
  return load;
}

/** A FreezeNotice as the coordinator acts on it: hold_ms 0 is the default bound. */
function validateFreezeNotice(notice: v1.FreezeNotice__Output): { frozen: boolean; source: string; holdMs: number } {
  const source = validate.name('freeze_notice.source', notice.source);
  const holdMs = validate.intIn('freeze_notice.hold_ms', notice.holdMs, 0, MAX_FREEZE_HOLD_MS);
  return { frozen: notice.frozen, source, holdMs: holdMs || DEFAULT_FREEZE_HOLD_MS };
}

const ENFORCEMENTS: readonly unknown[] = Object.values(Enforcement);

function validateBudgetReport(report: v1.BudgetReport__Output): v1.BudgetReport {
  if (!ENFORCEMENTS.includes(report.enforcement)) {
    throw new InvalidArgumentError('budget.enforcement', `must be one of ${ENFORCEMENTS.join(', ')}, got ${report.enforcement}`);
  }
  return {
    tokenId: validate.name('budget.token_id', report.tokenId),
    budget: { ioBytesPerSec: report.budget?.ioBytesPerSec ?? 0, cpuPercent: report.budget?.cpuPercent ?? 0 },
    paused: report.paused,
    enforcement: report.enforcement,
    detail: validate.text('budget.detail', report.detail),
  };
}

const MAX_HOOKS = 64;

function validateQuiesceReport(report: v1.QuiesceReport__Output): QuiesceReport {
  const state = validate.enumName('quiesce.state', quiesceState, report.state);
  if (report.hooks.length > MAX_HOOKS) throw new InvalidArgumentError('quiesce.hooks', `more than ${MAX_HOOKS} hooks`);
  return {
    ...report,
    state,
    tokenId: validate.name('quiesce.token_id', report.tokenId),
    message: validate.text('quiesce.message', report.message),
    hooks: report.hooks.map((h, i) => ({
      ...h,
      name: validate.text(`quiesce.hooks[${i}].name`, h.name, 256),
      message: validate.text(`quiesce.hooks[${i}].message`, h.message),
    })),
  };
}

export function agentService(
  coordinator: Coordinator,
  registry: AgentRegistry,
  plans: Pick<PlanKeeper, 'declaredChanged'>,
  clock: Clock,
  log: Logger,
  quiesce: Pick<QuiesceBroker, 'report'>,
): v1.AgentServiceHandlers {
  return {
    Session(call) {
      let vm: string | undefined;
      let host = '';
      let ended = false;
      const session: AgentSession = {
        send: (message) => {
          if (ended) return;
          // Writes queue while the agent does not read: past the bound, it is not listening.
          if (call.writableLength >= MAX_SESSION_BACKLOG) {
            log.warn('closing an agent session that does not read its commands', { vm, waiting: call.writableLength });
            end(resourceExhausted(`more than ${MAX_SESSION_BACKLOG} messages unread: reconnect`));
          } else call.write(message);
        },
        close: (reason) => {
          if (ended) return;
          ended = true;
          log.info('closing agent session', { vm, reason });
          call.end();
        },
      };
      const end = (status: Partial<grpc.ServiceError>) => {
        if (ended) return;
        ended = true;
        if (vm) registry.disconnect(vm, session);
        call.emit('error', status);
      };
      const fail = (error: unknown) => end(toServiceError(error, log, 'Session'));
      const helloTimer = setTimeout(
        () => fail(new InvalidArgumentError('hello', `no hello within ${HELLO_TIMEOUT_MS} ms`)),
        HELLO_TIMEOUT_MS,
      );

      call.on('data', (message: v1.AgentMessage__Output) => {
        if (ended) return;
        try {
          if (message.hello) {
            if (vm) throw new InvalidArgumentError('hello', 'sent twice on one session');
            const hello = validateHello(message.hello, coordinator.defaultHost);
            clearTimeout(helloTimer);
            vm = hello.vm;
            host = hello.host;
            coordinator
              .ensureHost(hello.host)
              .then(() => {
                registry.connect({ ...hello, lastHelloAt: clock.now() }, session);
                plans.declaredChanged(hello.host);
                const policy = coordinator.state.host(hello.host).policy;
                session.send({
                  settings: {
                    host: hello.host,
                    vm: hello.vm,
                    reportIntervalMs: policy.reportIntervalMs,
                    leaseTtlMs: policy.leaseTtlMs,
                  },
                });
                log.info('agent connected', { vm: hello.vm, host: hello.host, version: hello.agentVersion });
              })
              .catch(fail);
          } else if (!vm) {
            throw new InvalidArgumentError('hello', 'must be the first message of a session');
          } else if (message.load) {
            const load = validateLoad(message.load);
            // The hello made the host known (ensureHost adds it at once, before committing it).
            const policy = completePolicy(coordinator.state.host(host).policy);
            const running = coordinator.state.activeLeases(host).filter((l) => l.vm === vm && l.kind === 'GUEST');
            registry.reportLoad(vm, load, running, policy, clock.now());
            // The start gate holds new backups of a busy VM back: it judges by the VM's own work.
            coordinator
              .setVmLoad(host, vm, { ...foreground(load), at: clock.now() })
              .catch((e) => log.warn('could not record a VM load for the start gate', { vm, error: e as Error }));
          } else if (message.budget) {
            const report = validateBudgetReport(message.budget);
            // A report can cross the token's end on the wire; one about another VM's token is not this agent's to make.
            if (coordinator.state.lease(report.tokenId!)?.vm === vm) registry.reportBudget(vm, report);
            else log.debug('ignoring a budget report for a token this VM does not hold', { vm, token: report.tokenId });
          } else if (message.quiesce) {
            const report = validateQuiesceReport(message.quiesce);
            // As for budgets: a report about a freeze this VM was not asked for is not its to make.
            if (!quiesce.report(vm, report)) log.debug('ignoring a quiesce report for a token this VM was not asked to freeze', { vm, token: report.tokenId });
          } else if (message.freezeNotice) {
            const notice = validateFreezeNotice(message.freezeNotice);
            log.info(notice.frozen ? 'VM frozen by the hypervisor: holding its guest backups' : 'VM thawed', { vm, source: notice.source });
            coordinator.freezeNotice(host, vm, notice).catch((e) => log.warn('could not record a freeze notice', { vm, error: e as Error }));
          } else if (message.ack) {
            if (!message.ack.ok) log.warn('agent could not carry out a command', { vm, ...message.ack });
          } else {
            throw new InvalidArgumentError('body', 'empty message');
          }
        } catch (e) {
          fail(e);
        }
      });
      const closed = () => {
        clearTimeout(helloTimer);
        if (vm) {
          registry.disconnect(vm, session);
          log.info('agent disconnected', { vm });
        }
        if (!ended) {
          ended = true;
          if (!call.cancelled) call.end();
        }
      };
      call.on('end', closed);
      call.on('cancelled', closed);
      call.on('error', closed);
    },
  };
}

