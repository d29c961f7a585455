#!/usr/bin/env node
// `npm run lint:proto`: the wire contract must pass buf lint (buf.yaml) and compile with stock protoc, as
// anyone generating a client in another language compiles it.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const files = fs
  .readdirSync(path.join(__dirname, 'headroom', 'v1'))
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => path.join('proto', 'headroom', 'v1', f));

/** Runs one check, in the repository's root; false (with why on stderr) when it fails. */
function check(what, command, args, install) {
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (r.error?.code === 'ENOENT') console.error(`lint:proto: ${command} not found: ${install}`);
  else if (r.error) throw r.error;
  else if (r.status !== 0) console.error(`lint:proto: ${what} failed (exit ${r.status ?? r.signal})`);
  return !r.error && r.status === 0;
}

const out = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-protoc-'));
let ok;
try {
  ok =
    check('buf lint', process.execPath, [require.resolve('@bufbuild/buf/bin/buf'), 'lint'], 'run npm install') &&
    check(
      'protoc',
      'protoc',
      ['-I', 'proto', `--python_out=${out}`, ...files],
      "install Debian's protobuf-compiler (apt-get install protobuf-compiler)",
    );
} finally {
  fs.rmSync(out, { recursive: true, force: true });
}
if (!ok) process.exit(1);
console.log(`lint:proto: buf lint and protoc accept the ${files.length} files of proto/headroom/v1`);
