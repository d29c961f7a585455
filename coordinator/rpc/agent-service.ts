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
import type { QuiesceBroker } from '../service/quiesce-broker';
import type { VmResolver } from '../service/placement-monitor';
import { foreground } from '../domain/load-signals';
import { InvalidArgumentError } from '../domain/errors';
import { completePolicy } from '../domain/policy';
import { resourceExhausted } from './call-guard';
import { HELLO_TIMEOUT_MS, MAX_SESSION_BACKLOG } from './limits';
import { stream } from './handler';
import * as validate from './validate';
import type * as v1 from '../../proto/generated/headroom/v1';
import { formatDuration } from '../../common/util/duration';

export function agentService(
  coordinator: Coordinator,
  registry: AgentRegistry,
  plans: Pick<PlanKeeper, 'declaredChanged'>,
  clock: Clock,
  log: Logger,
  quiesce: Pick<QuiesceBroker, 'report'>,
  vms: Pick<VmResolver, 'resolve'>,
): v1.AgentServiceHandlers {
  return {
    Session: stream(log, (call: grpc.ServerDuplexStream<v1.AgentMessage__Output, v1.CoordinatorMessage>, failCall) => {
      let vm: string | undefined;
      let host = '';
      let ended = false;
      const session: AgentSession = {
        send: (message) => {
          if (ended) return;
          // Writes queue while the agent does not read: past the bound, it is not listening.
          if (call.writableLength >= MAX_SESSION_BACKLOG) {
            log.warn('closing an agent session that does not read its commands', { vm, waiting: call.writableLength });
            end(() =>
              call.emit('error', resourceExhausted(`more than ${MAX_SESSION_BACKLOG} messages unread: reconnect`)),
            );
          } else call.write(message);
        },
        close: (reason) => {
          if (ended) return;
          ended = true;
          log.info('closing agent session', { vm, reason });
          call.end();
        },
      };
      /** Ends the session with the status that `answer` sends. */
      const end = (answer: () => void) => {
        if (ended) return;
        ended = true;
        if (vm) registry.disconnect(vm, session);
        answer();
      };
      const fail = (error: unknown) => end(() => failCall(error));
      const helloTimer = setTimeout(
        () => fail(new InvalidArgumentError('hello', `no hello within ${formatDuration(HELLO_TIMEOUT_MS)}`)),
        HELLO_TIMEOUT_MS,
      );

      call.on('data', (message: v1.AgentMessage__Output) => {
        if (ended) return;
        try {
          if (message.hello) {
            if (vm) throw new InvalidArgumentError('hello', 'sent twice on one session');
            const said = validate.hello(message.hello, coordinator.defaultHost);
            // An agent with no `vm:` says its SMBIOS UUID; one with `vm: web1` says the name: one identity.
            const hello = { ...said, vm: vms.resolve('hello.vm', said.vm) };
            clearTimeout(helloTimer);
            vm = hello.vm;
            host = hello.host;
            coordinator
              .ensureHost(hello.host)
              .then(() => registry.connect({ ...hello, lastHelloAt: clock.now() }, session))
              .then(() => {
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
            const load = validate.load(message.load);
            // The hello made the host known (ensureHost adds it at once, before committing it).
            const policy = completePolicy(coordinator.state.host(host).policy);
            const running = coordinator.state.activeLeases(host).filter((l) => l.vm === vm && l.kind === 'GUEST');
            registry.reportLoad(vm, load, running, policy, clock.now());
            // The start gate holds new backups of a busy VM back: it judges by the VM's own work.
            coordinator
              .setVmLoad(host, vm, { ...foreground(load), waits: load, at: clock.now() })
              .catch((e) => log.warn('could not record a VM load for the start gate', { vm, error: e as Error }));
          } else if (message.budget) {
            const report = validate.budgetReport(message.budget);
            // A report can cross the token's end on the wire; one about another VM's token is not this agent's to make.
            if (coordinator.state.lease(report.tokenId!)?.vm === vm) registry.reportBudget(vm, report);
            else log.debug('ignoring a budget report for a token this VM does not hold', { vm, token: report.tokenId });
          } else if (message.quiesce) {
            const report = validate.quiesceReport(message.quiesce);
            // As for budgets: a report about a freeze this VM was not asked for is not its to make.
            if (!quiesce.report(vm, report))
              log.debug('ignoring a quiesce report for a token this VM was not asked to freeze', {
                vm,
                token: report.tokenId,
              });
          } else if (message.freezeNotice) {
            const notice = validate.freezeNotice(message.freezeNotice);
            log.info(notice.frozen ? 'VM frozen by the hypervisor: holding its guest backups' : 'VM thawed', {
              vm,
              source: notice.source,
            });
            coordinator
              .freezeNotice(host, vm, notice)
              .catch((e) => log.warn('could not record a freeze notice', { vm, error: e as Error }));
          } else if (message.ack) {
            if (!message.ack.ok) log.warn('agent could not carry out a command', { vm, ...message.ack });
          } else {
            throw new InvalidArgumentError('body', 'empty message');
          }
        } catch (e) {
          fail(e);
        }
      });
      let gone = false;
      // 'end', 'cancelled' and 'error' can all come for one stream: one disconnect, logged once.
      const closed = () => {
        if (gone) return;
        gone = true;
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
    }),
  };
}
