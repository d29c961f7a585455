import { strict as assert } from 'node:assert';
import { renderAgents } from '../../../ctl/commands/agents';
import { historyLine, renderHistory, sortBySeq } from '../../../ctl/commands/history';
import { pickToken } from '../../../ctl/commands/revoke';
import { renderCluster, renderHosts } from '../../../ctl/commands/status';
import { renderActive, renderQueued, shortId } from '../../../ctl/commands/tokens';
import { UsageError } from '../../../common/util/usage-error';
import { DEFAULT_POLICY } from '../../../coordinator/domain/policy';
import type {
  AgentInfo__Output,
  HistoryEvent__Output,
  HostInfo__Output,
  QueuedRequest__Output,
  Token__Output,
} from '../../../proto/generated/headroom/v1';

const at = (h: number, m: number, s: number) => new Date(2026, 0, 15, h, m, s).getTime();
const NOW = at(12, 0, 0);
const POLICY = { ...DEFAULT_POLICY };

function token(over: Partial<Token__Output>): Token__Output {
  return {
    tokenId: '0123456789abcdef',
    fencing: 1,
    target: '',
    kind: 'TOKEN_KIND_GUEST',
    host: 'host-a',
    vm: 'vm-1',
    job: 'restic',
    requestId: 'r1',
    slot: { startUnixMs: at(11, 58, 0), expectedEndUnixMs: at(12, 28, 0), windowEndUnixMs: 0 },
    grantedUnixMs: at(11, 58, 0),
    expiresUnixMs: NOW + 25_000,
    ttlMs: 30_000,
    priority: 0,
    budget: null,
    ...over,
  };
}

describe('ctl rendering', () => {
  it("shows hosts with tokens against their caps, pause reason, the host's own load and signal, and policy", () => {
    const hosts: HostInfo__Output[] = [
      {
        host: 'host-b',
        paused: true,
        pauseReason: 'maintenance',
        fencing: 9,
        policy: POLICY,
        activeGuest: 0,
        activeHypervisor: 1,
        queued: 2,
        agentsConnected: 3,
        placementSource: '',
        placement: [],
        hostLoad: null,
        hostLoadSignal: '',
      },
      {
        host: 'host-a',
        paused: false,
        pauseReason: '',
        fencing: 12,
        policy: POLICY,
        activeGuest: 2,
        activeHypervisor: 0,
        queued: 0,
        agentsConnected: 1,
        placementSource: '',
        placement: [],
        hostLoad: {
          cpuPercent: 37.5,
          ioBytesPerSec: 3 * 1024 * 1024,
          cpuPressure: { someAvg10: 1.25, fullAvg10: 0 },
          ioPressure: { someAvg10: 12.5, fullAvg10: 4 },
          memoryPressure: { someAvg10: 0.5, fullAvg10: 0 },
          diskAwaitMs: 2.25,
        },
        hostLoadSignal: 'pressure (PSI)',
      },
    ];
    const lines = renderHosts(hosts).split('\n');
    assert.match(
      lines[0],
      /^HOST\s+STATE\s+GUEST\s+HYPERVISOR\s+QUEUED\s+AGENTS\s+FENCING\s+HOST CPU\s+HOST PSI IO\/CPU\/MEM\s+HOST AWAIT\s+HOST SIGNAL\s+POLICY$/,
    );
    assert.match(
      lines[1],
      /^host-a\s+active\s+2\/4\s+0\/1\s+0\s+1\s+12\s+37\.5%\s+12\.5\/1\.3\/0\.0%\s+2\.3 ms\s+pressure \(PSI\)\s+ttl 30s, overrun no, reports every 10s$/,
    );
    assert.match(lines[2], /^host-b\s+paused: maintenance\s+0\/4\s+1\/1\s+2\s+3\s+9\s+-\s+-\s+-\s+-\s+ttl/);
    assert.equal(renderHosts([]), 'no hosts');
  });

  it("shows a cluster's leader, members and etcd endpoints, saying what is wrong with an unhealthy one", () => {
    const now = 1_000_000;
    const member = (host: string, leader: boolean) => ({
      host,
      address: `127.0.0.1:75${host.slice(-1)}0`,
      peer: '',
      leader,
      version: '0.1.0',
      startedUnixMs: now - 90_000,
    });
    const out = renderCluster(
      {
        clustered: true,
        name: 'prod',
        members: [member('pve1', false), member('pve2', true)],
        etcd: [
          {
            endpoint: '10.0.0.1:2379',
            healthy: true,
            error: '',
            raftLeader: true,
            version: '3.4.23',
            dbSizeBytes: 2048,
          },
          {
            endpoint: '10.0.0.2:2379',
            healthy: false,
            error: 'fetch failed',
            raftLeader: false,
            version: '',
            dbSizeBytes: 0,
          },
        ],
      },
      now,
    ).split('\n');
    assert.equal(out[0], 'Cluster prod: 2 members, leader pve2, etcd 1/2 healthy');
    assert.match(out[2], /^pve1\s+127\.0\.0\.1:7510\s+follower\s+0\.1\.0\s+1m30s$/);
    assert.match(out[3], /^pve2\s+127\.0\.0\.1:7520\s+leader\s/);
    assert.match(out[6], /^10\.0\.0\.1:2379\s+healthy\s+leader\s+3\.4\.23\s+2\.0 KiB$/);
    assert.match(out[7], /^10\.0\.0\.2:2379\s+unhealthy: fetch failed\s+-\s+-\s+-$/);
  });

  it('shows active tokens with short id, slot, window end and time to expiry', () => {
    const out = renderActive(
      [
        token({
          slot: { startUnixMs: at(11, 58, 0), expectedEndUnixMs: at(12, 28, 0), windowEndUnixMs: at(13, 0, 0) },
        }),
      ],
      NOW,
    );
    const [header, row] = out.split('\n');
    assert.match(header, /^ID\s+KIND\s+HOST\s+VM\s+JOB\s+FENCING\s+SLOT\s+WINDOW END\s+EXPIRES$/);
    assert.match(row, /^01234567\s+GUEST\s+host-a\s+vm-1\s+restic\s+1\s+11:58:00 → 12:28:00\s+13:00:00\s+in 25s$/);
    assert.equal(renderActive([], NOW), 'no active tokens');
    assert.equal(shortId('abc'), 'abc');
  });

  it('shows queued requests with position, wait, what they wait for and the estimated start', () => {
    const q: QueuedRequest__Output = {
      request: {
        requestId: 'r2',
        kind: 'TOKEN_KIND_HYPERVISOR',
        host: 'host-a',
        vm: 'vm-2',
        job: 'vzdump',
        target: '',
        expectedDurationMs: 0,
        latestStartUnixMs: 0,
        windowEndUnixMs: 0,
        priority: 0,
        ttlMs: 0,
      },
      position: 1,
      queuedUnixMs: NOW - 72_000,
      estimatedStartUnixMs: at(12, 28, 0),
      waitingFor: '1 GUEST token (vm-1/restic)',
    };
    const [header, row] = renderQueued([q], NOW).split('\n');
    assert.match(header, /^POS\s+KIND\s+HOST\s+VM\s+JOB\s+WAITING\s+WAITING FOR\s+ESTIMATED START$/);
    assert.match(
      row,
      /^\s*1\s+HYPERVISOR\s+host-a\s+vm-2\s+vzdump\s+1m12s\s+1 GUEST token \(vm-1\/restic\)\s+12:28:00 \(in 28m\)$/,
    );
    assert.equal(renderQueued([], NOW), 'no queued requests');
  });

  it('shows agents with age of the last hello and human units for the last load', () => {
    const agent: AgentInfo__Output = {
      vm: 'vm-1',
      host: 'host-a',
      agentVersion: '0.1.0',
      hostname: 'db1',
      connected: true,
      lastHelloUnixMs: NOW - 12_000,
      lastLoad: {
        sampledUnixMs: NOW - 1_000,
        cpuPercent: 37.25,
        memUsedBytes: 1024,
        memTotalBytes: 4096,
        diskReadBytesPerSec: 12.3 * 1024 * 1024,
        diskWriteBytesPerSec: 512,
        netRxBytesPerSec: 0,
        netTxBytesPerSec: 0,
        load1: 0.5,
        load5: 0,
        load15: 0,
        backupCpuPercent: 0,
        backupIoBytesPerSec: 0,
        cpuPressure: { someAvg10: 1.04, someAvg60: 0, fullAvg10: 0, fullAvg60: 0 },
        ioPressure: { someAvg10: 12.5, someAvg60: 0, fullAvg10: 3, fullAvg60: 0 },
        memoryPressure: { someAvg10: 2, someAvg60: 0, fullAvg10: 0.25, fullAvg60: 0 },
        pressureMissing: '',
        diskAwaitMs: 3.25,
      },
      jobs: [
        {
          name: 'restic',
          schedule: '0 2 * * *',
          windowMs: 0,
          expectedDurationMs: 0,
          declaredCost: null,
          priority: 0,
          target: '',
        },
        {
          name: 'pg_dump',
          schedule: '0 3 * * *',
          windowMs: 0,
          expectedDurationMs: 0,
          declaredCost: null,
          priority: 0,
          target: '',
        },
      ],
      budgets: [],
      vmName: '',
      loadSignal: 'pressure (PSI)',
    };
    const idle: AgentInfo__Output = {
      ...agent,
      vm: 'vm-2',
      connected: false,
      lastLoad: null,
      jobs: [],
      loadSignal: '',
    };
    const [, row1, row2] = renderAgents([idle, agent], NOW).split('\n');
    assert.match(
      row1,
      /^vm-1\s+host-a\s+db1\s+yes\s+12s ago\s+37\.3%\s+25\.0%\s+12\.3 MiB\/s\s+512 B\/s\s+0\.50\s+12\.5\/1\.0\/0\.3%\s+3\.3 ms\s+pressure \(PSI\)\s+restic, pg_dump$/,
    );
    assert.match(row2, /^vm-2\s+host-a\s+db1\s+no\s+12s ago\s+-\s+-\s+-\s+-\s+-\s+-\s+-\s+-\s+-$/);
    const withoutPsi = { ...agent.lastLoad!, ioPressure: null, diskAwaitMs: undefined };
    const [, row] = renderAgents([{ ...agent, lastLoad: withoutPsi, loadSignal: 'cpu% (fallback)' }], NOW).split('\n');
    assert.match(row, /\s0\.50\s+missing\s+-\s+cpu% \(fallback\)\s+restic/);
    assert.equal(renderAgents([], NOW), 'no agents');
  });

  it('shows history oldest first with dashes for what an event does not have', () => {
    const ev = (seq: number, over: Partial<HistoryEvent__Output>): HistoryEvent__Output => ({
      seq,
      atUnixMs: at(11, 0, seq),
      type: 'HISTORY_EVENT_TYPE_GRANTED',
      host: 'host-a',
      vm: 'vm-1',
      job: 'restic',
      kind: 'TOKEN_KIND_GUEST',
      tokenId: '0123456789',
      fencing: seq,
      requestId: 'r',
      detail: '',
      vmName: '',
      ...over,
    });
    const events = sortBySeq([
      ev(2, { type: 'HISTORY_EVENT_TYPE_RELEASED', detail: 'exit code 0' }),
      ev(1, {}),
      ev(3, {
        type: 'HISTORY_EVENT_TYPE_HOST_PAUSED',
        vm: '',
        job: '',
        kind: 'TOKEN_KIND_UNSPECIFIED',
        tokenId: '',
        fencing: 0,
        detail: 'maintenance',
      }),
    ]);
    const lines = renderHistory(events).split('\n');
    assert.match(lines[1], /^2026-01-15 11:00:01\s+GRANTED\s+host-a\s+vm-1\s+restic\s+GUEST\s+01234567\s+1$/);
    assert.match(lines[2], /^2026-01-15 11:00:02\s+RELEASED\s.*exit code 0$/);
    assert.match(lines[3], /^2026-01-15 11:00:03\s+HOST_PAUSED\s+host-a\s+-\s+-\s+-\s+-\s+-\s+maintenance$/);
    assert.equal(renderHistory([]), 'no events');
    // Streamed lines keep fixed columns whatever the content.
    assert.equal(historyLine(events[0]).indexOf('GRANTED'), historyLine(events[2]).indexOf('HOST_PAUSED'));
  });

  it('cuts a history DETAIL to the width given, with an ellipsis, and never without one', () => {
    const detail = `failure, exit 3, ${'x'.repeat(200)}, the end`;
    const event: HistoryEvent__Output = {
      seq: 1,
      atUnixMs: at(11, 0, 1),
      type: 'HISTORY_EVENT_TYPE_RELEASED',
      host: 'host-a',
      vm: 'vm-1',
      job: 'restic',
      kind: 'TOKEN_KIND_GUEST',
      tokenId: '0123456789',
      fencing: 1,
      requestId: 'r',
      detail,
      vmName: '',
    };
    for (const width of [140, 160, 200]) {
      const [, row] = renderHistory([event], { width }).split('\n');
      assert.equal([...row].length, width, row);
      assert.ok(row.endsWith('…'), row);
      const streamed = historyLine(event, width);
      assert.equal([...streamed].length, width, streamed);
      assert.ok(streamed.endsWith('…'), streamed);
    }
    assert.ok(renderHistory([event]).endsWith(detail), 'whole without a width');
    assert.ok(historyLine(event).endsWith(detail), 'whole without a width');
  });

  it('resolves a unique token id prefix and refuses an ambiguous one, listing the candidates', () => {
    const active = [token({ tokenId: 'abcd-1' }), token({ tokenId: 'abcd-2' }), token({ tokenId: 'ffff-1' })];
    assert.equal(pickToken(active, 'ffff'), 'ffff-1');
    assert.equal(pickToken(active, 'abcd-1'), 'abcd-1');
    assert.equal(pickToken(active, 'zzzz'), 'zzzz');
    assert.equal(pickToken(active, 'ab'), 'ab', 'too short to be a prefix: sent as typed');
    assert.throws(
      () => pickToken(active, 'abcd'),
      (e: unknown) => e instanceof UsageError && /matches 2 active tokens/.test(e.message) && /abcd-2/.test(e.message),
    );
  });
});
