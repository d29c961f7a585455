#!/usr/bin/env node
/**
 * headroomctl, the admin CLI of a Headroom coordinator: the process around cli.ts (argv, stdout/stderr,
 * signals, exit code).
 */
import * as os from 'node:os';
import { EXIT_SOFTWARE } from '../common/util/exit-codes';
import { PROGRAM, runCli } from './cli';
import { createCliLogger } from './cli-log';

const handlers = new Set<(signal: NodeJS.Signals) => void>();

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // A command that runs until interrupted (history --follow, host-backup) decides what a signal means;
    // otherwise we stop the way an unhandled signal would.
    if (handlers.size === 0) process.exit(128 + os.constants.signals[signal]);
    for (const h of [...handlers]) h(signal);
  });
}

// Output piped into `head` must not end in an EPIPE stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const write = (stream: NodeJS.WriteStream) => (text: string) => void stream.write(text);

runCli(process.argv.slice(2), {
  io: {
    stdout: write(process.stdout),
    stderr: write(process.stderr),
    columns: process.stdout.isTTY ? process.stdout.columns : undefined,
  },
  env: process.env,
  now: Date.now,
  log: createCliLogger(PROGRAM, (line) => process.stderr.write(`${line}\n`)),
  onInterrupt(handler) {
    handlers.add(handler);
    return () => handlers.delete(handler);
  },
}).then(
  (code) => {
    // Let stdout drain (a pipe may be slow), then exit: a lingering keepalive timer must not keep us alive.
    process.exitCode = code;
    process.stdout.write('', () => process.exit(code));
  },
  (err) => {
    process.stderr.write(`${PROGRAM}: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(EXIT_SOFTWARE);
  },
);
