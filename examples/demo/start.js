#!/usr/bin/env node
// `npm start`: makes a fresh clone runnable with nothing but Node and npm — installs the dependencies if
// they are missing, builds, then runs the demo (dist/examples/demo/demo.js). Plain JavaScript on purpose:
// it must run before anything is installed or compiled.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function step(title, args) {
  process.stdout.write(`\n▶ ${title}\n`);
  const r = spawnSync(npm, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`npm start: "${npm} ${args.join(' ')}" failed (exit ${r.status})\n`);
    process.exit(r.status || 1);
  }
}

const installed = ['@grpc/grpc-js', 'better-sqlite3', 'typescript'].every((m) =>
  fs.existsSync(path.join(root, 'node_modules', m, 'package.json')),
);
if (!installed) step('installing dependencies (npm ci)', ['ci', '--no-audit', '--no-fund']);
step('building', ['run', '--silent', 'build']);

const demo = spawnSync(process.execPath, [path.join(root, 'dist', 'examples', 'demo', 'demo.js'), ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(demo.status ?? 1);
