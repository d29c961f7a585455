/**
 * `headroomctl pki init|list|revoke|rotate`: the coordinator's own CA. `init` works on the state
 * directory of this machine; the others are admin calls to the coordinator (PkiService). Renewal and
 * reissue: pki-renewal.ts.
 */
import * as os from 'node:os';
import type { Certificate__Output, Identity__Output } from '../../proto/generated/headroom/v1';
import { role } from '../../proto/enums';
import { describeExpiry } from '../../common/pki/expiry';
import { DEFAULT_PKI_DIR } from '../../coordinator/pki/state-dir';
import { type OptionSpec, parseString, parseText } from '../../common/util/cli-args';
import type { Command } from '../command';
import { print, printJson } from '../context';
import { UsageError } from '../../common/util/usage-error';
import { formatTable } from '../table';
import { formatDateTime } from '../../common/util/human';
import { identityArgs, parseTokenTtl, printToken } from './enroll';

/** N1,N2,...: names and addresses, as pki init and pki reissue-server take them. */
export const csv = (raw: string) => raw.split(',').map((s) => parseString(s.trim()));

export const pkiInitCommand: Command = {
  name: 'pki init',
  examples: [
    'pki init --dir /etc/headroom/pki --names coordinator.example.org,10.0.0.5',
    'pki init --dir ./pki --host pve1 --admin alice',
  ],
  summary: "create the coordinator's CA, its server certificate and this machine's admin and host identities",
  synopsis: '[--dir DIR] [--names N1,N2,...] [--host H] [--admin NAME]',
  description: [
    'Writes, in DIR (mode 0700): ca.pem and ca.key, server.pem and server.key (for the coordinator: start it',
    "with --pki-dir DIR), admin.pem and admin.key (headroomctl's admin identity: --pki-dir DIR), host.pem and",
    'host.key (the host role, for host-backup and vzdump hooks), and pki.db (tokens and certificates).',
    'Private keys are written with mode 0600 and never printed. Refuses a directory that already holds a CA.',
  ].join('\n'),
  options: [
    { name: 'dir', value: 'DIR', help: `state directory (default ${DEFAULT_PKI_DIR})`, parse: parseString },
    {
      name: 'names',
      value: 'N,...',
      help: "names and IP addresses agents use to reach the coordinator (default: this machine's hostname, localhost, 127.0.0.1, ::1)",
      parse: csv,
    },
    {
      name: 'host',
      value: 'H',
      help: "the coordinator's host name, as its --host (default: this machine's hostname)",
      parse: parseString,
    },
    { name: 'admin', value: 'NAME', help: 'name of the admin identity (default: admin)', parse: parseString },
  ],
  async run(ctx, args) {
    const dir = args.get<string>('dir') ?? DEFAULT_PKI_DIR;
    const host = args.get<string>('host') ?? os.hostname();
    // Loaded here: the X.509 library costs every other headroomctl command its start-up time.
    const { initPki } = await import('../../coordinator/pki/init');
    const r = await initPki({
      dir,
      host,
      serverNames: args.get<string[]>('names') ?? [os.hostname(), 'localhost', '127.0.0.1', '::1'],
      admin: args.get<string>('admin') ?? 'admin',
      log: ctx.log,
    });
    if (ctx.json) printJson(ctx, { dir, caFingerprintSha256: r.caFingerprint, files: r.files });
    else {
      print(ctx, `CA created in ${dir}, fingerprint sha256 ${r.caFingerprint}`);
      print(ctx, `start the coordinator with --pki-dir ${dir}; run headroomctl with --pki-dir ${dir} to act as admin`);
    }
    return 0;
  },
};

function roleName(id: Identity__Output | null): string {
  return role.fromWire(id?.role)?.toLowerCase() ?? '?';
}

function describe(id: Identity__Output | null): string {
  if (!id) return '?';
  if (id.role === 'ROLE_AGENT') return `${id.vm}@${id.host}`;
  return id.role === 'ROLE_HOST' ? id.host : id.name;
}

export const pkiListCommand: Command = {
  name: 'pki list',
  examples: ['pki list', 'pki list --all --json'],
  summary: "list the certificates the coordinator issued, its own server certificate and its CA's expiry",
  synopsis: '[--all]',
  options: [{ name: 'all', help: 'include revoked certificates' }],
  async run(ctx, args) {
    const res = await ctx.pki('ListCertificates', { includeRevoked: args.flag('all') });
    if (ctx.json) {
      printJson(ctx, res);
      return 0;
    }
    const now = ctx.now();
    const status = (c: Certificate__Output) =>
      c.revokedUnixMs > 0 ? `revoked (${c.revokeReason})` : describeExpiry(c.notAfterUnixMs, now);
    const s = res.server;
    // The coordinator's own: first, since its expiry stops every client at once.
    const own = s
      ? [
          [
            s.serial,
            'server',
            [...s.dnsNames, ...s.ipAddresses].join(','),
            formatDateTime(s.notAfterUnixMs),
            describeExpiry(s.notAfterUnixMs, now),
          ],
          ['-', 'ca', '-', formatDateTime(s.caNotAfterUnixMs), describeExpiry(s.caNotAfterUnixMs, now)],
        ]
      : [];
    print(
      ctx,
      formatTable(
        [
          { header: 'SERIAL' },
          { header: 'ROLE' },
          { header: 'IDENTITY' },
          { header: 'NOT AFTER' },
          { header: 'STATUS' },
        ],
        [
          ...own,
          ...res.certificates.map((c) => [
            c.serial,
            roleName(c.identity),
            describe(c.identity),
            formatDateTime(c.notAfterUnixMs),
            status(c),
          ]),
        ],
      ),
    );
    return 0;
  },
};

const IDENTITY_OPTIONS: OptionSpec[] = [
  { name: 'host', value: 'H', help: "the host (with --vm: that VM's agent; alone: the host role)", parse: parseString },
  { name: 'vm', value: 'V', help: 'the VM whose agent it is', parse: parseString },
];

export const pkiRevokeCommand: Command = {
  name: 'pki revoke',
  examples: ["pki revoke --host pve1 --vm web1 --reason 'VM decommissioned'", 'pki revoke --serial 4f2a9c'],
  summary: 'revoke certificates now: their calls are refused and their open streams closed',
  synopsis: '(--serial S | --host H [--vm V] | --admin NAME) [--reason TEXT]',
  description: 'By serial (as pki list prints it), or every valid certificate of an identity.',
  options: [
    { name: 'serial', value: 'S', help: 'the certificate, as pki list prints it', parse: parseString },
    ...IDENTITY_OPTIONS,
    { name: 'admin', value: 'NAME', help: 'an admin identity', parse: parseString },
    { name: 'reason', value: 'TEXT', help: 'why, in the list and the log', parse: parseText },
  ],
  async run(ctx, args) {
    const serial = args.get<string>('serial') ?? '';
    const admin = args.get<string>('admin');
    const identity =
      admin !== undefined ? { role: 'ROLE_ADMIN' as const, host: '', vm: '', name: admin } : identityArgs(args);
    if ((serial === '') === (identity === undefined))
      throw new UsageError('give --serial, or --host [--vm], or --admin (one of them)');
    const res = await ctx.pki('RevokeCertificates', { serial, identity, reason: args.get<string>('reason') ?? '' });
    if (ctx.json) printJson(ctx, res);
    else
      for (const c of res.revoked) print(ctx, `revoked ${c.serial} (${roleName(c.identity)} ${describe(c.identity)})`);
    return 0;
  },
};

export const pkiRotateCommand: Command = {
  name: 'pki rotate',
  examples: ['pki rotate --host pve1 --vm web1', 'pki rotate --host pve1 --ttl 1h'],
  summary: 'make a token to enrol an identity again with a new key; its old certificates are revoked when it is used',
  synopsis: '--host H [--vm V] [--ttl DURATION]',
  options: [
    ...IDENTITY_OPTIONS,
    { name: 'ttl', value: 'DURATION', help: 'how long the token is valid (default 1h)', parse: parseTokenTtl },
  ],
  async run(ctx, args) {
    const identity = identityArgs(args);
    if (!identity) throw new UsageError('missing required option --host');
    const res = await ctx.pki('RotateCertificate', { identity, ttlMs: args.get<number>('ttl') ?? 0 });
    printToken(ctx, res, identity);
    return 0;
  },
};
