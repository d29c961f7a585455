/**
 * `headroomctl revoke`: voids an active token now. The coordinator tells the holder's agent to stop; the
 * next renew or release with that fencing number is refused. Accepts the short id that `tokens` prints.
 */
import type { Token__Output } from '../../proto/generated/headroom/v1';
import { parseText } from '../../common/util/cli-args';
import type { Command } from '../command';
import { type Context, print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { formatTable } from '../table';
import { kindName } from './tokens';

/** Shorter prefixes are sent as typed: too easy to hit the wrong token by accident. */
const MIN_PREFIX = 4;

export const revokeCommand: Command = {
  name: 'revoke',
  examples: ["revoke 3f1e9b2c-0d4a-4c55-9a8e-2f0b6c1d7e10 --reason 'stuck backup'"],
  summary: 'void an active token now (its holder is told to stop)',
  synopsis: 'TOKEN_ID [--reason TEXT]',
  description: `TOKEN_ID is the full id or a prefix of at least ${MIN_PREFIX} characters that matches one active token (as \`tokens\` prints it).`,
  options: [{ name: 'reason', value: 'TEXT', help: 'why, shown in history and to the holder', parse: parseText }],
  positionals: ['TOKEN_ID'],
  async run(ctx, args) {
    const given = args.positionals[0];
    if (!given) throw new UsageError('missing TOKEN_ID');
    const tokenId = await resolveTokenId(ctx, given);
    const res = await ctx.admin('RevokeToken', { tokenId, reason: args.get<string>('reason') ?? '' });
    if (ctx.json) printJson(ctx, res);
    else print(ctx, describeRevoked(res.token, tokenId));
    return 0;
  },
};

/**
 * The full id of the one active token that `given` names: itself when it is a full id or matches none
 * (the coordinator then says NOT_FOUND), the match when it is a unique prefix.
 * @throws UsageError when the prefix matches several tokens, listing them.
 */
export async function resolveTokenId(ctx: Context, given: string): Promise<string> {
  if (given.length < MIN_PREFIX) return given;
  const { active } = await ctx.admin('ListTokens', { host: '' });
  return pickToken(active, given);
}

export function pickToken(active: readonly Token__Output[], given: string): string {
  if (given.length < MIN_PREFIX || active.some((t) => t.tokenId === given)) return given;
  const matches = active.filter((t) => t.tokenId.startsWith(given));
  if (matches.length === 1) return matches[0].tokenId;
  if (matches.length > 1) {
    const list = formatTable(
      [{ header: 'ID' }, { header: 'KIND' }, { header: 'HOST' }, { header: 'VM' }, { header: 'JOB' }],
      matches.map((t) => [t.tokenId, kindName(t.kind), t.host, t.vm, t.job]),
    );
    throw new UsageError(`"${given}" matches ${matches.length} active tokens; give more of the id:\n${list}`);
  }
  return given;
}

export function describeRevoked(token: Token__Output | null, tokenId: string): string {
  if (!token) return `revoked token ${tokenId}`;
  const what = [token.vm, token.job].filter(Boolean).join('/');
  return `revoked token ${token.tokenId} (${kindName(token.kind)}${what ? ` ${what}` : ''} on ${token.host}, fencing ${token.fencing})`;
}
