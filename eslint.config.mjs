// The layer rules of docs/architecture.md, enforced: a violation fails `npm run lint`.
// Syntax-only typescript-eslint rules (no type information), so that the whole tree lints in well under a minute.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import { importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/**
 * import-x/no-cycle follows value imports only; this rule finds the cycles that pass through a type import
 * (still a knot in the design: none of its files reads on its own). Relative imports only, which is how
 * the project imports its own files.
 */
const IMPORT = /^[ \t]*(import|export)\s+(type\s+)?([^;]*?)\s*from\s+['"](\.{1,2}\/[^'"]+)['"]/gm;
/** Each file's relative imports, by path, kept while the file is unchanged (an editor's ESLint lives long). */
const edgesOf = new Map();
function edges(file) {
  const mtime = fs.existsSync(file) ? fs.statSync(file).mtimeMs : 0;
  if (edgesOf.get(file)?.mtime !== mtime) {
    const text = mtime ? fs.readFileSync(file, 'utf8') : '';
    const found = [];
    for (const [, , typeKeyword, clause, spec] of text.matchAll(IMPORT)) {
      const to = resolveRelative(file, spec);
      const inline = /^\{([^}]*)\}$/.exec(clause.trim());
      const onlyTypes =
        !!typeKeyword || (!!inline && inline[1].split(',').every((s) => s.trim() === '' || /^type\s/.test(s.trim())));
      if (to) found.push({ to, onlyTypes });
    }
    edgesOf.set(file, { mtime, found });
  }
  return edgesOf.get(file).found;
}
function resolveRelative(from, spec) {
  const base = path.resolve(path.dirname(from), spec);
  return [`${base}.ts`, path.join(base, 'index.ts')].find((f) => fs.existsSync(f));
}
const noTypeCycle = {
  meta: { type: 'problem', messages: { cycle: 'Import cycle through a type import: {{route}}' }, schema: [] },
  create(context) {
    const self = context.physicalFilename;
    const rel = (f) => path.relative(context.cwd, f);
    const check = (node) => {
      const first = node.source && resolveRelative(self, node.source.value);
      if (!first) return;
      const startTyped =
        node.importKind === 'type' ||
        node.exportKind === 'type' ||
        (node.specifiers?.length > 0 &&
          node.specifiers.every((s) => s.importKind === 'type' || s.exportKind === 'type'));
      // Breadth-first over (file, whether a type edge was crossed); a route back here through one is reported.
      const seen = new Set();
      const queue = [{ file: first, typed: startTyped, route: [self, first] }];
      while (queue.length > 0) {
        const { file, typed, route } = queue.shift();
        for (const e of edges(file)) {
          const next = { file: e.to, typed: typed || e.onlyTypes, route: [...route, e.to] };
          if (e.to === self) {
            if (next.typed)
              return context.report({ node, messageId: 'cycle', data: { route: next.route.map(rel).join(' -> ') } });
            continue;
          }
          const key = `${e.to}|${next.typed}`;
          if (!seen.has(key)) {
            seen.add(key);
            queue.push(next);
          }
        }
      }
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check };
  },
};

/** What every layer of the coordinator's domain must stay free of: I/O, transport, storage and the adapters. */
const DOMAIN = ['coordinator/domain/**', 'coordinator/planner/**', 'common/domain/**'];
const COORDINATOR_ADAPTERS = [
  'rpc',
  'store',
  'service',
  'planning',
  'hypervisor-jobs',
  'pki',
  'placement',
  'metrics',
  'http',
  'dashboard',
  'cluster',
].map((d) => `./coordinator/${d}/**`);
/** Zones that keep each folder of `ordered` from importing the ones after it. */
function layers(ordered) {
  return ordered.slice(0, -1).map((lower, i) => ({
    target: `${lower}/**`,
    from: ordered.slice(i + 1).map((upper) => `${upper}/**`),
    message: `layers go ${ordered.map((d) => d.split('/').pop()).join(' < ')}: a layer imports none above it.`,
  }));
}

const EXECUTABLES_AND_RUNNERS = ['./agent/**', './coordinator/**', './ctl/**', './host-backup/**'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'proto/generated/**'] },
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.recommended],
    plugins: { 'import-x': importX, local: { rules: { 'no-type-cycle': noTypeCycle } } },
    settings: {
      // Without the extensions and the parser, import-x reads no .ts dependency, and no-cycle sees nothing.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': 'error',
      'local/no-type-cycle': 'error',
      'import-x/no-self-import': 'error',
      'import-x/no-unresolved': 'error',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: DOMAIN.map((d) => `./${d}`),
              from: [...COORDINATOR_ADAPTERS, './agent/**', './ctl/**', './host-backup/**'],
              message: 'domain code is pure: it takes its inputs (and a Clock) and imports no adapter.',
            },
            {
              target: './agent/**',
              from: ['./coordinator/**', './ctl/**', './host-backup/**'],
              message: 'the agent runs in the guest: it shares code with the others only through common/.',
            },
            { target: './coordinator/**', from: './ctl/**', message: 'the coordinator imports no CLI code.' },
            // The coordinator's layers, so that folders form no cycle: each imports only the ones below it.
            ...layers(
              [
                'store',
                'pki',
                'placement',
                'service',
                'planning',
                'hypervisor-jobs',
                'rpc',
                'metrics',
                'http',
                'dashboard',
                'cluster',
              ].map((d) => `./coordinator/${d}`),
            ),
            {
              target: './host-backup/**',
              from: './coordinator',
              except: ['./domain'],
              message: "the backup runner shares the coordinator's domain rules only.",
            },
            {
              target: './host-backup/catalog/**',
              from: './host-backup/hypervisor/**',
              message: 'the hypervisor drivers write into the catalog, not the other way round.',
            },
            {
              target: './host-backup/**',
              from: './ctl/**',
              message: 'the host-side backup runner imports no CLI code: ctl/ wraps it.',
            },
            {
              target: './common/**',
              from: EXECUTABLES_AND_RUNNERS,
              message: 'common/ is shared by every executable: it depends on none of them.',
            },
          ],
        },
      ],
      // tsc's noUnusedLocals/noUnusedParameters already decide this, with the `_` convention.
      '@typescript-eslint/no-unused-vars': 'off',
      // require() is used on purpose: JSON from outside rootDir, node:sea only inside a SEA, lazy loads.
      '@typescript-eslint/no-require-imports': 'off',
      // A `let` that closures read before its one assignment (a handle built after its callbacks) is not a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Tests read untyped JSON (log lines, package files) and poke at grpc-js internals.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: DOMAIN.map((d) => `${d}/*.ts`),
    rules: {
      'import-x/no-nodejs-modules': 'error',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@grpc/*', 'better-sqlite3', 'systeminformation'], message: 'domain code does no I/O.' },
          ],
        },
      ],
    },
  },
  // The build and demo tools are CommonJS scripts.
  { files: ['**/*.js'], languageOptions: { sourceType: 'commonjs' } },
);
