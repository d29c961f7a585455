#!/usr/bin/env node
/**
 * Builds `dist/bin/headroom-agent`, the agent as one executable file (a Node single executable
 * application): esbuild bundles dist/agent/main.js with every dependency (grpc-js, proto-loader and the
 * proto descriptor, systeminformation, yaml, zod) into one CommonJS file, because a SEA's
 * `require` only loads built-in modules; Node turns the bundle into a blob; postject injects the blob
 * into a copy of this Node binary. Run by `npm run build:agent` after `npm run build`.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const ENTRY = path.join(ROOT, 'dist', 'agent', 'main.js');
const WORK = path.join(ROOT, 'dist', 'sea');
const BUNDLE = path.join(WORK, 'headroom-agent.cjs');
const BLOB = path.join(WORK, 'headroom-agent.blob');
const SEA_CONFIG = path.join(WORK, 'sea-config.json');
const OUT = path.join(ROOT, 'dist', 'bin', process.platform === 'win32' ? 'headroom-agent.exe' : 'headroom-agent');
/** The fuse Node's SEA support looks for; postject flips it to say "a blob is present". */
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/**
 * Optional native helpers that systeminformation requires inside try/catch on macOS only, for CPU
 * temperature, which the agent never asks for: absent from the bundle, and harmless.
 */
const OPTIONAL_EXTERNALS = ['osx-temperature-sensor', 'macos-temperature-sensor'];

/**
 * zod's CommonJS build requires its messages in every language (a third of zod, which esbuild cannot
 * tree-shake out of CommonJS); the agent writes its own messages and zod uses English by default. Only
 * English is bundled: without this, the agent started with about 15 MiB more resident memory.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.cjs$/ }, (args) =>
      /[\\/]zod[\\/]/.test(args.importer)
        ? { path: path.join(path.dirname(args.importer), '../locales/index.cjs'), namespace: 'zod-locales' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `exports.en = require(${JSON.stringify(path.join(path.dirname(args.path), 'en.cjs'))}).default;`,
      resolveDir: path.dirname(args.path),
      loader: 'js',
    }));
  },
};

/** Runs a tool, showing its output only when it fails. */
function quietly(file, args) {
  try {
    execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    throw new Error(
      `${path.basename(args[0] === undefined ? file : args[0])} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
  }
}

const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

async function main() {
  const started = Date.now();
  if (!fs.existsSync(ENTRY)) throw new Error(`${path.relative(ROOT, ENTRY)} is missing: run "npm run build" first`);
  fs.mkdirSync(WORK, { recursive: true });
  fs.mkdirSync(path.dirname(OUT), { recursive: true });

  const esbuild = require('esbuild');
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    outfile: BUNDLE,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // Smaller source held in memory by V8 (the bundle is the agent's main script, kept whole); names are
    // kept so that errors and stack traces still read.
    minify: true,
    keepNames: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
    external: OPTIONAL_EXTERNALS,
    plugins: [zodEnglishOnly],
  });
  // Nothing may stay external: the SEA could not load it.
  const external = Object.values(result.metafile.outputs)
    .flatMap((o) => o.imports)
    .filter((i) => i.external && !require('node:module').isBuiltin(i.path) && !OPTIONAL_EXTERNALS.includes(i.path));
  if (external.length > 0) throw new Error(`not bundled: ${[...new Set(external.map((i) => i.path))].join(', ')}`);

  fs.writeFileSync(
    SEA_CONFIG,
    JSON.stringify(
      {
        main: BUNDLE,
        output: BLOB,
        disableExperimentalSEAWarning: true,
        // The snapshot and code cache would tie the blob to this exact Node build; keep it portable and simple.
        useSnapshot: false,
        useCodeCache: false,
      },
      null,
      2,
    ),
  );
  quietly(process.execPath, ['--experimental-sea-config', SEA_CONFIG]);

  fs.rmSync(OUT, { force: true });
  fs.copyFileSync(process.execPath, OUT);
  fs.chmodSync(OUT, 0o755);
  // Through postject's CLI rather than its API: LIEF prints harmless warnings about ELF note sections that
  // would drown the one line this script has to say; they are shown only if injection fails.
  const postject = require.resolve('postject/dist/cli.js');
  const macho = process.platform === 'darwin' ? ['--macho-segment-name', 'NODE_SEA'] : [];
  quietly(process.execPath, [postject, OUT, 'NODE_SEA_BLOB', BLOB, '--sentinel-fuse', FUSE, ...macho]);
  if (process.platform === 'darwin') execFileSync('codesign', ['--sign', '-', OUT]);

  const size = fs.statSync(OUT).size;
  const bundleSize = fs.statSync(BUNDLE).size;
  console.log(
    `built ${path.relative(ROOT, OUT)}: ${mib(size)} (${size} bytes; bundle ${mib(bundleSize)}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}

main().catch((err) => {
  console.error(`build-sea: ${err.message}`);
  process.exit(1);
});
