/**
 * The chaos checker must be able to fail: a clean history passes, and each kind of violation, injected
 * into the clients' records or the store's history, is reported.
 */
import { strict as assert } from 'node:assert';
import type { HistoryRecord, HistoryType } from '../../coordinator/store/store';
import { type CycleRecord, type GrantRecord, type ViolationKind, checkHistory } from './history-checker';

let seq = 0;
function row(
  type: HistoryType,
  at: number,
  c: CycleRecord,
  tokenId = c.grant?.tokenId ?? '',
  detail = '',
): HistoryRecord {
  return {
    seq: ++seq,
    at,
    type,
    host: c.host,
    vm: c.vm,
    job: 'chaos',
    kind: c.kind,
    tokenId,
    fencing: c.grant?.fencing ?? 0,
    requestId: c.requestId,
    detail,
  };
}

function cycle(
  requestId: string,
  kind: 'GUEST' | 'HYPERVISOR',
  vm: string,
  sentAt: number,
  grant: Partial<GrantRecord> & Pick<GrantRecord, 'tokenId' | 'fencing' | 'receivedAt'>,
): CycleRecord {
  return {
    client: 'c',
    requestId,
    host: 'h1',
    vm,
    kind,
    sentAt,
    outcome: 'granted',
    grant: {
      grantedAtCoord: grant.receivedAt - 1,
      expiresAtCoord: grant.receivedAt + 3_000,
      renewals: 0,
      release: 'acknowledged',
      ...grant,
    },
  };
}

/**
 * A clean history on one host: GUEST a (vm1) released; GUEST b (vm2) granted in the same batch as a's
 * release would free nothing else; HYPERVISOR c granted after both released, and its ack reaching the
 * client before a's release ack did not matter (a's hold ends when its release was sent); GUEST d
 * abandoned and expired; a denial.
 */
function clean(): { cycles: CycleRecord[]; history: HistoryRecord[] } {
  seq = 0;
  const a = cycle('r-a', 'GUEST', 'vm1', 1000, {
    tokenId: 'a',
    fencing: 1,
    receivedAt: 1005,
    releaseSentAt: 1500,
    renewals: 1,
  });
  const b = cycle('r-b', 'GUEST', 'vm2', 1100, { tokenId: 'b', fencing: 2, receivedAt: 1105, releaseSentAt: 1600 });
  const c = cycle('r-c', 'HYPERVISOR', 'vm1', 1200, {
    tokenId: 'c',
    fencing: 3,
    receivedAt: 1601,
    releaseSentAt: 2000,
  });
  // d: abandoned, so it holds until the expiry it was told; e is granted on the coordinator's clock after it.
  const d = cycle('r-d', 'GUEST', 'vm3', 2100, {
    tokenId: 'd',
    fencing: 4,
    receivedAt: 2105,
    expiresAtCoord: 5104,
    release: 'not-sent',
    abandoned: true,
  });
  const e = cycle('r-e', 'HYPERVISOR', 'vm3', 2200, {
    tokenId: 'e',
    fencing: 5,
    receivedAt: 5110,
    grantedAtCoord: 5106,
    releaseSentAt: 5200,
  });
  const denied: CycleRecord = {
    client: 'c',
    requestId: 'r-x',
    host: 'h1',
    vm: 'vm4',
    kind: 'GUEST',
    sentAt: 2300,
    outcome: 'denied',
    deniedReason: 'WINDOW_CLOSED',
  };
  const history = [
    row('GRANTED', 1004, a),
    row('GRANTED', 1104, b),
    row('RENEWED', 1300, a),
    row('RELEASED', 1501, a),
    row('RELEASED', 1601, b),
    row('GRANTED', 1601, c),
    row('RELEASED', 2001, c),
    row('GRANTED', 2104, d),
    row('RESTORED', 3000, d),
    row('DENIED', 2400, denied, '', 'WINDOW_CLOSED: its window closed'),
    row('EXPIRED', 5105, d),
    row('GRANTED', 5106, e),
    row('RELEASED', 5201, e),
  ];
  return { cycles: [a, b, c, d, e, denied], history };
}

function kinds(cycles: CycleRecord[], history: HistoryRecord[]): ViolationKind[] {
  return [...new Set(checkHistory(cycles, history).violations.map((v) => v.kind))].sort();
}

const byToken = (cycles: CycleRecord[], id: string) => cycles.find((c) => c.grant?.tokenId === id)!;

describe('chaos history checker', () => {
  it('passes a clean history and counts what it checked', () => {
    const { cycles, history } = clean();
    const report = checkHistory(cycles, history);
    assert.deepEqual(report.violations, []);
    assert.equal(report.counts.grants, 5);
    assert.equal(report.counts['releases acknowledged'], 4);
    assert.equal(report.counts['denials: WINDOW_CLOSED'], 1);
    assert.equal(report.counts['store: tokens restored after a restart'], 1);
    assert.equal(report.counts['store: tokens renewed by their holder after a restart'], 0);
  });

  it('finds a GUEST and a HYPERVISOR token held together on a host, from the clients and from the store', () => {
    const { cycles, history } = clean();
    // c told granted before b's release was sent: the clients saw an overlap.
    byToken(cycles, 'c').grant!.receivedAt = 1550;
    assert.deepEqual(kinds(cycles, history), ['kind-overlap']);
    // The store granting c before b's release is the same violation, seen in the commit order.
    const fresh = clean();
    const [releaseB, grantC] = [
      fresh.history.findIndex((r) => r.type === 'RELEASED' && r.tokenId === 'b'),
      fresh.history.findIndex((r) => r.tokenId === 'c'),
    ];
    [fresh.history[releaseB].seq, fresh.history[grantC].seq] = [fresh.history[grantC].seq, fresh.history[releaseB].seq];
    assert.deepEqual(kinds(fresh.cycles, fresh.history), ['kind-overlap']);
  });

  it('judges an unreleased token held until the expiry it was told, on the coordinator clock', () => {
    const { cycles, history } = clean();
    // e granted by the coordinator 1 ms before d's told expiry, though its client heard of it later.
    byToken(cycles, 'e').grant!.grantedAtCoord = 5103;
    history.find((r) => r.type === 'EXPIRED')!.at = 5103;
    assert.deepEqual(kinds(cycles, history), ['kind-overlap', 'premature-expiry', 'vm-overlap']);
  });

  it('ends a release that went unanswered at its sending only when the store has the RELEASED', () => {
    const { cycles, history } = clean();
    const a = byToken(cycles, 'a').grant!;
    a.release = 'unanswered';
    assert.deepEqual(kinds(cycles, history), [], 'the store shows a was released: c did not overlap it');
    const withoutRelease = history.filter((r) => !(r.type === 'RELEASED' && r.tokenId === 'a'));
    withoutRelease.push({
      ...history.find((r) => r.tokenId === 'a' && r.type === 'RELEASED')!,
      seq: 100,
      type: 'EXPIRED',
      at: a.expiresAtCoord,
    });
    // Now a holds until its told expiry (4005), past c's grant: two tokens on vm1, of both kinds.
    assert.deepEqual(kinds(cycles, withoutRelease), ['kind-overlap', 'vm-overlap']);
  });

  it('finds two tokens for one VM', () => {
    const { cycles, history } = clean();
    byToken(cycles, 'b').vm = 'vm1';
    for (const r of history) if (r.tokenId === 'b') r.vm = 'vm1';
    assert.deepEqual(kinds(cycles, history), ['vm-overlap']);
  });

  it('finds fencing numbers that do not increase', () => {
    const { cycles, history } = clean();
    // c was asked for after a was received, yet got a smaller fencing number, in the clients' records and the store.
    byToken(cycles, 'c').grant!.fencing = 1;
    for (const r of history) if (r.tokenId === 'c') r.fencing = 1;
    const report = checkHistory(cycles, history);
    assert.ok(report.violations.filter((v) => v.kind === 'fencing').length >= 3, JSON.stringify(report.violations));
  });

  it('finds acknowledged grants, releases, renewals and denials missing from the store', () => {
    const { cycles, history } = clean();
    const without = (pred: (r: HistoryRecord) => boolean) => history.filter((r) => !pred(r));
    assert.ok(
      kinds(
        cycles,
        without((r) => r.type === 'GRANTED' && r.tokenId === 'b'),
      ).includes('grant-missing'),
    );
    assert.ok(
      kinds(
        cycles,
        without((r) => r.type === 'RELEASED' && r.tokenId === 'c'),
      ).includes('release-missing'),
    );
    assert.deepEqual(
      kinds(
        cycles,
        without((r) => r.type === 'RENEWED'),
      ),
      ['renewal-missing'],
    );
    assert.deepEqual(
      kinds(
        cycles,
        without((r) => r.type === 'DENIED'),
      ),
      ['denial-missing'],
    );
    const wrongFencing = history.map((r) => (r.tokenId === 'b' && r.type === 'GRANTED' ? { ...r, fencing: 9 } : r));
    assert.ok(kinds(cycles, wrongFencing).includes('grant-missing'));
  });

  it('finds a token restored after it had ended', () => {
    const { cycles, history } = clean();
    history.push(row('RESTORED', 6000, byToken(cycles, 'a')));
    assert.deepEqual(kinds(cycles, history), ['store-inconsistent']);
  });

  it("finds a shared target held by more tokens at once than its limit, in the clients' records and in the store", () => {
    seq = 0;
    // Three GUEST tokens of different VMs on target t (at most 2): a and b overlap; c starts after a's release.
    const onT = (c: CycleRecord): CycleRecord => ({ ...c, target: 't' });
    const a = onT(
      cycle('r-a', 'GUEST', 'vm1', 1000, { tokenId: 'a', fencing: 1, receivedAt: 1005, releaseSentAt: 1500 }),
    );
    const b = onT(
      cycle('r-b', 'GUEST', 'vm2', 1100, { tokenId: 'b', fencing: 2, receivedAt: 1105, releaseSentAt: 2500 }),
    );
    const c = onT(
      cycle('r-c', 'GUEST', 'vm3', 1200, { tokenId: 'c', fencing: 3, receivedAt: 1601, releaseSentAt: 2600 }),
    );
    const granted = (x: CycleRecord, at: number) =>
      row('GRANTED', at, x, undefined, 'fencing 1, ttl 30s, on target t (0 B/s of its I/O)');
    const history = [
      granted(a, 1004),
      granted(b, 1104),
      row('RELEASED', 1501, a),
      granted(c, 1600),
      row('RELEASED', 2501, b),
      row('RELEASED', 2601, c),
    ];
    const limits = [{ name: 't', maxConcurrent: 2 }];
    const ok = checkHistory([a, b, c], history, limits);
    assert.deepEqual(ok.violations, []);
    assert.equal(ok.counts['store: most tokens on one target at once'], 2);
    // With a limit of 1, both sources see the over-subscription.
    const tight = checkHistory([a, b, c], history, [{ name: 't', maxConcurrent: 1 }]).violations;
    assert.ok(tight.some((v) => v.kind === 'target-oversubscribed' && v.message.startsWith('target t')));
    assert.ok(tight.some((v) => v.kind === 'target-oversubscribed' && v.message.startsWith('store seq')));
  });
});
