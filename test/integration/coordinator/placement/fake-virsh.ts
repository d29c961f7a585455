/**
 * A stand-in for `virsh` on the coordinator's PATH, for the tests of placement through a real coordinator
 * process: `list` prints the domains the test wrote, `event --loop` follows a file the test appends
 * lifecycle lines to (in libvirt 9.0's words, as captured from the real virsh), `domuuid` looks a name up.
 * Every domain listed runs. Migrations need two libvirtds; this lets a test play one's events exactly.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from '../../../helpers/coordinator-process';

const SCRIPT = `#!/bin/sh
dir=$(dirname "$0")
shift 2 # -c URI
case "$1" in
  list)
    case "$*" in
      *--all*) cat "$dir/domains" ;;
      *--state-running*) cut -d' ' -f1 "$dir/domains" ;;
    esac ;;
  event) echo $$ > "$dir/event.pid"; exec tail -n +1 -f "$dir/events" ;;
  domuuid) grep " $2\\$" "$dir/domains" | cut -d' ' -f1 ;;
  *) echo "fake virsh: $*: not supported" >&2; exit 1 ;;
esac
`;

export class FakeVirsh {
  readonly dir = tempDir('headroom-fake-virsh-');

  constructor(domains: Record<string, string>) {
    fs.writeFileSync(path.join(this.dir, 'virsh'), SCRIPT, { mode: 0o755 });
    fs.writeFileSync(path.join(this.dir, 'events'), '');
    this.define(domains);
  }

  /** The environment of a coordinator that finds this virsh first. */
  env(): NodeJS.ProcessEnv {
    return { PATH: `${this.dir}:${process.env.PATH}` };
  }

  /** Replaces the domain list: name → UUID. */
  define(domains: Record<string, string>): void {
    const lines = Object.entries(domains).map(([name, uuid]) => `${uuid} ${name}\n`);
    fs.writeFileSync(path.join(this.dir, 'domains'), lines.join(''));
  }

  /** The path of the stand-in, for a source given it directly. */
  get path(): string {
    return path.join(this.dir, 'virsh');
  }

  /** The pid of the running `virsh event` (the test's own grandchild), once it runs. */
  eventPid(): number | undefined {
    const file = path.join(this.dir, 'event.pid');
    return fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : undefined;
  }

  /** `event 'lifecycle' for domain 'NAME': EVENT DETAIL`, as virsh prints it, and the empty line after it. */
  event(name: string, what: string): void {
    fs.appendFileSync(path.join(this.dir, 'events'), `event 'lifecycle' for domain '${name}': ${what}\n\n`);
  }
}
