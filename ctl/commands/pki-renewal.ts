/**
 * `headroomctl pki reissue-server` (on the coordinator's machine: a new server certificate from the same
 * CA, nobody enrols again) and `pki renew` (headroomctl's own admin or host certificate, renewed over its
 * mutual TLS session as agents renew theirs). docs/security.md, "Renewing certificates".
 */
import { describeExpiry } from '../../common/pki/expiry';
import { formatDuration, parseFlagDuration } from '../../common/util/duration';
import { parseString } from '../../common/util/cli-args';
import { UsageError } from '../../common/util/usage-error';
import { DEFAULT_PKI_DIR, pkiFiles } from '../../coordinator/pki/state-dir';
import type { Command } from '../command';
import { print, printJson } from '../context';
import { csv } from './pki';

const DAY_MS = 86_400_000;
/** As pki init makes it. */
const DEFAULT_SERVER_VALIDITY = '730d';

function parseValidity(raw: string): number {
  const ms = parseFlagDuration(raw);
  if (ms < DAY_MS) throw new Error(`at least 1d, got ${formatDuration(ms)}`);
  return ms;
}

export const pkiReissueServerCommand: Command = {
  name: 'pki reissue-server',
  examples: [
    'pki reissue-server --dir /etc/headroom/pki --names coordinator.example.org,10.0.0.5',
    'pki reissue-server --dir /etc/headroom/pki --valid 365d --new-key',
    'pki reissue-server --dir /etc/headroom/pki --names pve2.example.org,10.0.0.6 --member pve2',
  ],
  summary: "replace the coordinator's server certificate (new names, or before it expires) from the same CA",
  synopsis: '[--dir DIR] [--names N1,N2,...] [--valid DURATION] [--new-key] [--member HOST]',
  description: [
    'Writes a new server.pem in DIR, signed by the same CA: agents and admins pin the CA, so nobody enrols',
    'again. By default the key in server.key is certified again and only server.pem changes, in one rename,',
    'so a coordinator reloading at any moment reads a matching pair; --new-key makes a new key too. Then',
    'send the coordinator SIGHUP (kill -HUP PID): new connections get the new certificate, open sessions stay up.',
    'In a cluster (docs/cluster.md), run it on each member with a copy of the CA directory, naming that',
    "member's addresses and, with --member, its host: member.pem then names the member that forwards calls.",
  ].join('\n'),
  options: [
    { name: 'dir', value: 'DIR', help: `state directory (default ${DEFAULT_PKI_DIR})`, parse: parseString },
    {
      name: 'names',
      value: 'N,...',
      help: "DNS names and IP addresses agents use to reach the coordinator (default: the current certificate's)",
      parse: csv,
    },
    {
      name: 'valid',
      value: 'DURATION',
      help: `how long the certificate is valid, at most until the CA expires (default ${DEFAULT_SERVER_VALIDITY})`,
      parse: parseValidity,
    },
    { name: 'new-key', help: 'make a new key pair instead of keeping the one in server.key' },
    {
      name: 'member',
      value: 'HOST',
      help: "also write member.pem and member.key: cluster member HOST's identity (headroom://member/HOST)",
      parse: parseString,
    },
  ],
  async run(ctx, args) {
    const dir = args.get<string>('dir') ?? DEFAULT_PKI_DIR;
    // Loaded here: the X.509 library costs every other headroomctl command its start-up time.
    const { reissueServerCertificate } = await import('../../coordinator/pki/server-certificate');
    const { InvalidArgumentError } = await import('../../coordinator/domain/errors');
    const { IdentityError } = await import('../../coordinator/pki/identity');
    let r;
    try {
      r = await reissueServerCertificate({
        dir,
        names: args.get<string[]>('names'),
        validityMs: args.get<number>('valid') ?? parseFlagDuration(DEFAULT_SERVER_VALIDITY),
        newKey: args.flag('new-key'),
        member: args.get<string>('member'),
      });
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw new UsageError(`--names: ${e.problem}`);
      if (e instanceof IdentityError) throw new UsageError(`--member: ${e.message}`);
      throw e;
    }
    const { current, previous } = r;
    if (ctx.json) {
      printJson(ctx, {
        file: current.file,
        serial: current.serial,
        previousSerial: previous.serial,
        dnsNames: current.dnsNames,
        ipAddresses: current.ipAddresses,
        notAfter: new Date(current.notAfter).toISOString(),
        newKey: args.flag('new-key'),
        member: args.get<string>('member'),
      });
      return 0;
    }
    const names = [...current.dnsNames, ...current.ipAddresses].join(', ');
    print(ctx, `${current.file}: serial ${current.serial} (was ${previous.serial}) for ${names}`);
    print(
      ctx,
      `${describeExpiry(current.notAfter, ctx.now())} (${new Date(current.notAfter).toISOString()}); ${args.flag('new-key') ? 'new key in server.key' : 'same key'}`,
    );
    if (args.get<string>('member') !== undefined)
      print(ctx, `${pkiFiles(dir).memberCert}: cluster member ${args.get<string>('member')}`);
    print(ctx, 'send the coordinator SIGHUP (kill -HUP PID) to serve it: open sessions stay up');
    return 0;
  },
};

export const pkiRenewCommand: Command = {
  name: 'pki renew',
  examples: [
    'pki renew --pki-dir /etc/headroom/pki',
    'pki renew --tls-ca /etc/headroom/pki/ca.pem --tls-cert /etc/headroom/pki/host.pem --tls-key /etc/headroom/pki/host.key',
  ],
  summary: "renew headroomctl's own certificate (admin or host) before it expires, with a new key",
  synopsis: '',
  description: [
    'Renews the certificate headroomctl presents (--pki-dir DIR: DIR/admin.pem; or --tls-cert and --tls-key)',
    'over its mutual TLS session: a new key is made here, the coordinator signs a certificate for the same',
    'identity, and the key (mode 0600) and certificate replace the files together. Agents renew their own',
    'automatically. A revoked or expired certificate cannot be renewed: enrol again.',
  ].join('\n'),
  options: [],
  async run(ctx) {
    const files = ctx.tls;
    if (!files?.caFile || !files.certFile || !files.keyFile)
      throw new UsageError(
        'pki renew replaces the certificate headroomctl presents: give --pki-dir DIR, or --tls-ca, --tls-cert and --tls-key',
      );
    const { renewCertificateFiles } = await import('../../common/pki/renewal');
    const r = await renewCertificateFiles(
      { caFile: files.caFile, certFile: files.certFile, keyFile: files.keyFile },
      (req) => ctx.pki('RenewCertificate', req),
    );
    if (ctx.json) printJson(ctx, { ...r, notAfter: new Date(r.notAfter).toISOString(), certFile: files.certFile });
    else {
      print(ctx, `${files.certFile}: serial ${r.serial} (was ${r.previousSerial}), key ${files.keyFile}`);
      print(ctx, `${describeExpiry(r.notAfter, ctx.now())} (${new Date(r.notAfter).toISOString()})`);
    }
    return 0;
  },
};
