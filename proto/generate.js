#!/usr/bin/env node
// Build step for the wire contract, run by `npm run build`:
//  1. TypeScript types for every message and service (proto-loader-gen-types);
//  2. a barrel, generated/headroom/v1/index.ts, so code imports types from one place;
//  3. one JSON descriptor that every executable loads: JSON instead of .proto text lets the agent's
//     single-file binary carry its contract inside the bundle.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const protobuf = require('protobufjs');

const protoDir = __dirname;
const outDir = path.join(protoDir, 'generated');
const files = fs
  .readdirSync(path.join(protoDir, 'headroom', 'v1'))
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => path.join('headroom', 'v1', f));

fs.rmSync(outDir, { recursive: true, force: true });
execFileSync(
  process.execPath,
  [
    require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js'),
    '--longs=Number',
    '--enums=String',
    '--defaults',
    '--oneofs',
    '--grpcLib=@grpc/grpc-js',
    `--includeDirs=${protoDir}`,
    `--outDir=${outDir}`,
    ...files,
  ],
  { stdio: 'inherit' },
);

// common.proto defines no service, so its root file would only hold unused imports.
fs.rmSync(path.join(outDir, 'common.ts'));

const typesDir = path.join(outDir, 'headroom', 'v1');
const barrel = fs
  .readdirSync(typesDir)
  .filter((f) => f.endsWith('.ts') && f !== 'index.ts')
  .sort()
  .map((f) => `export * from './${f.slice(0, -3)}';`)
  .join('\n');
fs.writeFileSync(path.join(typesDir, 'index.ts'), `${barrel}\n`);

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(protoDir, target);
// Field names in camelCase, as the generated types (and so every side's code) spell them.
root.loadSync(files, { keepCase: false });
root.resolveAll();
fs.writeFileSync(path.join(outDir, 'descriptor.json'), JSON.stringify(root.toJSON()));
console.log(`proto: ${files.length} files -> proto/generated`);
