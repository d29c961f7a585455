#!/usr/bin/env node
/**
 * Writes docs/schemas/*.schema.json, the JSON Schemas of the configuration files, from their zod schemas
 * in the build (run `npm run build` first; `npm run schemas` does both). Editors complete and check
 * agent.yaml and coordinator.yaml with them; a unit test fails when they are out of date.
 */
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

/** Each published file and its schema's JSON text. */
function schemaFiles() {
  const { toJsonSchema } = require(path.join(dist, 'common/util/config-schema'));
  const { agentConfigSchema } = require(path.join(dist, 'agent/config'));
  const { coordinatorConfigSchema } = require(path.join(dist, 'coordinator/config'));
  return [
    {
      file: path.join(root, 'docs/schemas/agent.schema.json'),
      text: toJsonSchema(agentConfigSchema, 'headroom-agent configuration (agent.yaml)'),
    },
    {
      file: path.join(root, 'docs/schemas/coordinator.schema.json'),
      text: toJsonSchema(coordinatorConfigSchema, 'headroom-coordinator configuration (coordinator.yaml)'),
    },
  ];
}

if (require.main === module) {
  for (const { file, text } of schemaFiles()) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    process.stdout.write(`wrote ${path.relative(root, file)}\n`);
  }
}

module.exports = { schemaFiles };
