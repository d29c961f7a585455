/**
 * The agent's version, from package.json: read at run time from the repository, or bundled into the
 * single executable by esbuild (which inlines the literal require).
 */
function readVersion(): string {
  try {
    return (require('../../package.json') as { version: string }).version;
  } catch {
    return '0.0.0-dev';
  }
}

export const AGENT_VERSION = readVersion();
