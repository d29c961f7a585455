import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..', '..', '..');

describe('docs/cli.md', () => {
  it('is what --help prints today (else run npm run docs:cli)', () => {
    const { cliDoc, file } = require(path.join(root, 'scripts', 'gen-cli-docs.js')) as {
      cliDoc(): string;
      file: string;
    };
    assert.ok(fs.existsSync(file), 'docs/cli.md is missing: run npm run docs:cli');
    assert.ok(fs.readFileSync(file, 'utf8') === cliDoc(), 'docs/cli.md is out of date: run npm run docs:cli');
  });
});
