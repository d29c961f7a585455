/**
 * The Logger headroomctl hands to shared code (connection, guarded run): its lines read like the rest of
 * the CLI's messages ("headroomctl: warning: …") rather than a daemon's log. Warnings and errors by
 * default; HEADROOM_LOG=info|debug shows more, HEADROOM_LOG=error|silent less, and
 * HEADROOM_LOG_FORMAT=json gives the shared JSON log lines.
 */
import { type LogFields, type LogLevel, type Logger, createLogger } from '../common/util/log';

const RANK: Record<LogLevel | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };
const LABEL: Record<LogLevel, string> = { debug: 'debug', info: 'info', warn: 'warning', error: 'error' };

function formatFields(fields: LogFields): string {
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v)}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

export function createCliLogger(
  program: string,
  write: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const envLevel = env.HEADROOM_LOG as LogLevel | 'silent' | undefined;
  const level = envLevel && envLevel in RANK ? envLevel : 'warn';
  if (env.HEADROOM_LOG_FORMAT === 'json') return createLogger({ level, format: 'json', write });
  const make = (base: LogFields): Logger => {
    const emit =
      (lvl: LogLevel) =>
      (msg: string, fields: LogFields = {}) => {
        if (RANK[lvl] < RANK[level]) return;
        write(`${program}: ${LABEL[lvl]}: ${msg}${formatFields({ ...base, ...fields })}`);
      };
    return {
      debug: emit('debug'),
      info: emit('info'),
      warn: emit('warn'),
      error: emit('error'),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}
