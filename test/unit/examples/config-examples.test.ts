/**
 * The annotated example files are the configuration's documentation, so they must name every key the
 * published JSON Schemas (docs/schemas/, made from the zod schemas) know: a key added to a schema and not
 * to its example fails here. The coordinator's example must also be valid as it stands.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compileCoordinatorOptions, loadConfigFile } from '../../../coordinator/config';

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  allOf?: SchemaNode[];
}

/** Every property name anywhere in a JSON Schema. */
function schemaKeys(node: SchemaNode | boolean | undefined, into = new Set<string>()): Set<string> {
  if (!node || typeof node !== 'object') return into;
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    into.add(key);
    schemaKeys(child, into);
  }
  for (const child of [
    node.items,
    node.additionalProperties,
    ...(node.anyOf ?? []),
    ...(node.oneOf ?? []),
    ...(node.allOf ?? []),
  ]) {
    schemaKeys(child, into);
  }
  return into;
}

/** Whether the YAML text names `key` as a key: in block style or a flow mapping, commented out or not. */
function names(text: string, key: string): boolean {
  return new RegExp(`(^[\\s#]*(- )?|[{,]\\s*)${key}:`, 'm').test(text);
}

describe('the example configuration files', () => {
  for (const name of ['agent', 'coordinator']) {
    it(`examples/${name}.yaml names every key of docs/schemas/${name}.schema.json`, () => {
      const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs', 'schemas', `${name}.schema.json`), 'utf8'));
      const text = fs.readFileSync(path.join(ROOT, 'examples', `${name}.yaml`), 'utf8');
      const keys = [...schemaKeys(schema)];
      assert.ok(keys.length > 20, `the schema walk found only ${keys.length} keys`);
      assert.deepEqual(
        keys.filter((k) => !names(text, k)),
        [],
        `keys of the schema that examples/${name}.yaml does not document`,
      );
    });
  }

  it('finds an undocumented key', () => {
    assert.equal(names('policy:\n  maxGuestTokens: 4\n', 'maxHypervisorTokens'), false);
    assert.equal(names('# tls:\n#   allowAnonymous: false\n', 'allowAnonymous'), true);
    assert.equal(names('cost: { cpuPercent: 100, ioBytesPerSec: 0 }\n', 'ioBytesPerSec'), true);
  });

  it('examples/coordinator.yaml is valid as written, once its CA directory exists', () => {
    const file = path.join(ROOT, 'examples', 'coordinator.yaml');
    const raw = loadConfigFile(file);
    // The example's pki.dir is a real path on a host; here it holds no CA, so serve plaintext on loopback.
    delete raw.pki;
    const options = compileCoordinatorOptions({ ...raw, listen: '127.0.0.1:7400', plaintext: true }, file);
    assert.deepEqual(
      options.hypervisorJobs.map((j) => j.name),
      ['image', 'nightly', 'libvirt', 'vzdump'],
    );
  });
});
