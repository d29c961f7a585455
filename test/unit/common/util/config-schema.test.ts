import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..', '..', '..');

describe('published configuration schemas', () => {
  it('docs/schemas/ matches the zod schemas (else run npm run schemas)', () => {
    const { schemaFiles } = require(path.join(root, 'scripts', 'gen-schemas.js')) as {
      schemaFiles(): { file: string; text: string }[];
    };
    const files = schemaFiles();
    assert.equal(files.length, 2);
    for (const { file, text } of files) {
      assert.ok(fs.existsSync(file), `${path.relative(root, file)} is missing: run npm run schemas`);
      assert.equal(
        fs.readFileSync(file, 'utf8'),
        text,
        `${path.relative(root, file)} is out of date: run npm run schemas`,
      );
    }
  });

  it('the example files name their schema for editors', () => {
    for (const name of ['agent', 'coordinator']) {
      const [first] = fs.readFileSync(path.join(root, 'examples', `${name}.yaml`), 'utf8').split('\n');
      assert.equal(first, `# yaml-language-server: $schema=../docs/schemas/${name}.schema.json`);
      assert.ok(fs.existsSync(path.join(root, 'docs', 'schemas', `${name}.schema.json`)));
    }
  });
});
