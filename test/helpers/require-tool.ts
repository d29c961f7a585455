/**
 * The system tools the integration tests run come from Debian packages that `npm test` installs
 * (scripts/setup.sh, scripts/system-packages.txt). A test calls requireTool before it runs one, so that a
 * machine without it fails the test naming the package to install: not an ENOENT half-way, and no skip.
 */
import * as fs from 'node:fs';
import { checkExecutable } from '../../common/util/find-executable';

/** `name` (a command in PATH, or a file when it has a slash) if it is there; else throws naming the package. */
export function requireTool(name: string, debianPackage: string): string {
  const present = name.includes('/') ? fs.existsSync(name) : checkExecutable([name], process.env) === undefined;
  if (!present) {
    throw new Error(
      `${name} is missing: it comes with the Debian package ${debianPackage} (scripts/system-packages.txt). ` +
        `As root: apt-get install -y ${debianPackage}, or npm run setup`,
    );
  }
  return name;
}

/** Whether this process is root: mounts, loop devices and network namespaces need it, and setup cannot give it. */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
