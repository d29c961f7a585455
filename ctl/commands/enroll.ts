/**
 * `headroomctl enroll create`: a one-time, expiring token with which one agent (or hypervisor-level
 * caller) gets its certificate: `headroom-agent enroll --token … --coordinator host:port`.
 */
import type { CreateEnrollmentTokenResponse__Output, Identity__Output } from '../../proto/generated/headroom/v1';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { formatClock } from '../../common/util/human';
import { MAX_TOKEN_TTL_MS } from '../../common/pki/enrolment-token';
import { type ParsedArgs, parseString } from '../../common/util/cli-args';
import type { Command } from '../command';
import { type Context, note, print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';

export function parseTokenTtl(raw: string): number {
  const ms = parseFlagDuration(raw);
  if (ms < 1_000 || ms > MAX_TOKEN_TTL_MS)
    throw new Error(`expected a duration from 1s to ${formatDuration(MAX_TOKEN_TTL_MS)}, got "${raw}"`);
  return ms;
}

/** The token on stdout (alone, for scripts); what to do with it on stderr. */
export function printToken(ctx: Context, res: CreateEnrollmentTokenResponse__Output, identity: Identity__Output): void {
  if (ctx.json) {
    printJson(ctx, res);
    return;
  }
  print(ctx, res.token);
  const who =
    identity.role === 'ROLE_AGENT'
      ? `the agent of ${identity.vm} on ${identity.host}`
      : `the host role of ${identity.host}`;
  note(ctx, `one-time token for ${who}, valid until ${formatClock(res.expiresUnixMs, ctx.now())}`);
  note(ctx, `use it once: headroom-agent enroll --token TOKEN --coordinator ${ctx.coordinator}`);
}

/** The identity named by --host and --vm (agent) or --host alone (host role); undefined when neither is given. */
export function identityArgs(args: ParsedArgs): Identity__Output | undefined {
  const host = args.get<string>('host');
  const vm = args.get<string>('vm');
  if (host === undefined && vm === undefined) return undefined;
  if (host === undefined) throw new UsageError('--vm needs --host');
  return vm === undefined ? { role: 'ROLE_HOST', host, vm: '', name: '' } : { role: 'ROLE_AGENT', host, vm, name: '' };
}

export const enrollCreateCommand: Command = {
  name: 'enroll create',
  examples: ['enroll create --host pve1 --vm web1', 'enroll create --host pve1 --role host --ttl 1h'],
  summary: 'make a one-time token with which an agent gets its client certificate',
  synopsis: '--host H (--vm V | --role host) [--ttl DURATION]',
  description: [
    "Prints the token on stdout. It carries the SHA-256 fingerprint of the coordinator's CA, so the agent can",
    'trust the coordinator on first contact; the coordinator keeps only a hash of its secret. It can be used',
    "once, before it expires. With --vm the certificate is an agent's (GUEST tokens and the session of that",
    "VM only); with --role host, the host role's (HYPERVISOR tokens on that host).",
  ].join('\n'),
  options: [
    { name: 'host', value: 'H', help: 'the host the VM runs on (required)', parse: parseString },
    { name: 'vm', value: 'V', help: 'the VM whose agent enrols', parse: parseString },
    {
      name: 'role',
      value: 'ROLE',
      help: 'host: a hypervisor-level caller of H instead of an agent',
      parse: (raw) => {
        if (raw !== 'host' && raw !== 'agent') throw new Error(`expected agent or host, got "${raw}"`);
        return raw;
      },
    },
    {
      name: 'ttl',
      value: 'DURATION',
      help: 'how long the token is valid (default 1h, at most 7 days)',
      parse: parseTokenTtl,
    },
  ],
  async run(ctx, args) {
    const role = args.get<string>('role');
    if (args.get<string>('host') === undefined) throw new UsageError('missing required option --host');
    if (role === 'host' && args.has('vm')) throw new UsageError('--role host takes no --vm');
    if (role !== 'host' && !args.has('vm')) throw new UsageError('missing --vm (or --role host)');
    const identity = identityArgs(args)!;
    const res = await ctx.pki('CreateEnrollmentToken', { identity, ttlMs: args.get<number>('ttl') ?? 0 });
    printToken(ctx, res, identity);
    return 0;
  },
};
