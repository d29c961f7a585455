/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and says where the time went: self time by area (gRPC,
 * HTTP/2 and sockets, SQLite, our code, GC, idle) and the functions with the most self and total time.
 */
import * as fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Self time per area, ms, largest first. */
  areas: { area: string; ms: number }[];
  topSelf: { fn: string; ms: number }[];
  topTotal: { fn: string; ms: number }[];
}

function area(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (functionName === '(idle)') return 'idle (waiting in epoll)';
  if (functionName === '(garbage collector)') return 'garbage collection';
  if (functionName === '(program)') return 'V8/native, not attributed';
  if (url.includes('better-sqlite3')) return 'SQLite (better-sqlite3)';
  if (url.includes('@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('protobufjs') || url.includes('@grpc/proto-loader')) return 'protobuf encode/decode';
  if (
    /node:(internal\/)?(http2|net|stream|internal\/stream|tls|internal\/js_stream)/.test(url) ||
    url.startsWith('node:internal/streams')
  ) {
    return 'node http2/net/streams';
  }
  if (url.includes('/dist/coordinator/') || url.includes('/dist/common/') || url.includes('/dist/proto/'))
    return 'headroom coordinator code';
  if (url === '') return `native: ${functionName || '(anonymous)'}`;
  if (url.startsWith('node:')) return 'other node internals';
  return 'other';
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url ? ` ${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'}${where}`;
}

/** @throws when the file cannot be read or is not a CPU profile. */
export function summariseProfile(file: string, top = 12): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i + 1] is the time from sample i to the next one: charge it to sample i's node.
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + dt);
  }
  const areas = new Map<string, number>();
  const self = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    areas.set(area(node), (areas.get(area(node)) ?? 0) + us);
    self.set(label(node), (self.get(label(node)) ?? 0) + us);
  }
  // Total (inclusive) time per function, counting a function once per stack even when it recurses.
  const total = new Map<string, number>();
  const onStack = new Map<string, number>();
  const visit = (id: number): number => {
    const node = byId.get(id)!;
    const key = label(node);
    onStack.set(key, (onStack.get(key) ?? 0) + 1);
    let us = selfUs.get(id) ?? 0;
    for (const child of node.children ?? []) us += visit(child);
    onStack.set(key, onStack.get(key)! - 1);
    if (onStack.get(key) === 0 && !key.startsWith('(')) total.set(key, (total.get(key) ?? 0) + us);
    return us;
  };
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  for (const n of profile.nodes) if (!childIds.has(n.id)) visit(n.id);

  const sorted = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, us]) => [k, Math.round(us / 100) / 10] as const);
  return {
    file,
    totalMs: Math.round((profile.endTime - profile.startTime) / 1000),
    areas: sorted(areas).map(([a, ms]) => ({ area: a, ms })),
    topSelf: sorted(self)
      .slice(0, top)
      .map(([fn, ms]) => ({ fn, ms })),
    topTotal: sorted(total)
      .filter(([fn]) => !fn.startsWith('(root)'))
      .slice(0, top)
      .map(([fn, ms]) => ({ fn, ms })),
  };
}
