/**
 * The shipped Prometheus configuration (examples/prometheus/): the alert rules pass `promtool check rules`,
 * each rule group's unit tests pass `promtool test rules`, and prometheus.yml passes `promtool check config`.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { requireTool } from '../../helpers/require-tool';

const DIR = path.resolve(__dirname, '..', '..', '..', '..', 'examples', 'prometheus');
const RULES = path.join(DIR, 'headroom-alerts.yml');

function promtool(...args: string[]): string {
  return execFileSync(requireTool('promtool', 'prometheus'), args, { cwd: DIR, encoding: 'utf8', stdio: 'pipe' });
}

describe('examples/prometheus', () => {
  it('has alert rules that promtool accepts', () => {
    assert.match(promtool('check', 'rules', RULES), /SUCCESS: \d+ rules found/);
  });

  it('has a unit test file for each rule group, which promtool test rules passes', () => {
    const groups = (parse(fs.readFileSync(RULES, 'utf8')) as { groups: { name: string }[] }).groups.map((g) => g.name);
    for (const group of groups) {
      const file = `${group}.test.yml`;
      assert.ok(fs.existsSync(path.join(DIR, file)), `${file} tests the group ${group}`);
      assert.match(promtool('test', 'rules', file), /SUCCESS/, file);
    }
  });

  it('tests every alert it ships', () => {
    const alerts = (parse(fs.readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string }[] }[] }).groups
      .flatMap((g) => g.rules)
      .map((r) => r.alert);
    const tested = fs
      .readdirSync(DIR)
      .filter((f) => f.endsWith('.test.yml'))
      .map((f) => fs.readFileSync(path.join(DIR, f), 'utf8'))
      .join('\n');
    for (const alert of alerts) assert.match(tested, new RegExp(`alertname: ${alert}\\b`), alert);
  });

  it('has a prometheus.yml that promtool accepts', () => {
    assert.match(promtool('check', 'config', 'prometheus.yml'), /is valid prometheus config file syntax/);
  });
});
