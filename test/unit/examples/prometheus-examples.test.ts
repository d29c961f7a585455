/**
 * The alert rules and the Grafana dashboard in examples/prometheus/ name only metrics the coordinator
 * exposes (promtool cannot know: a rule on a misspelt metric is valid and never fires).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CoordinatorMetrics } from '../../../coordinator/metrics/coordinator-metrics';

const DIR = path.resolve(__dirname, '..', '..', '..', '..', 'examples', 'prometheus');

/** Every series name the coordinator's registry can expose, histograms' _bucket, _sum and _count included. */
function exposed(): Set<string> {
  const metrics = new CoordinatorMetrics({
    coordinator: { state: {} as never, onCommitted: () => () => {}, storeFailure: undefined },
    agents: { list: () => [] },
    plans: { current: () => undefined },
    placement: { vms: () => [], nameOf: () => undefined },
    host: 'h',
    lastSuccesses: [],
  });
  try {
    return new Set(
      metrics.registry
        .getMetricsAsArray()
        .flatMap((m) => [m.name, ...['_bucket', '_sum', '_count'].map((s) => `${m.name}${s}`)]),
    );
  } finally {
    metrics.close();
  }
}

describe('examples/prometheus', () => {
  for (const file of ['headroom-alerts.yml', 'grafana-dashboard.json']) {
    it(`${file} names only metrics the coordinator exposes`, () => {
      const names = new Set(fs.readFileSync(path.join(DIR, file), 'utf8').match(/\bheadroom_[a-z_]+/g));
      assert.ok(names.size > 5, `${file} names the metrics`);
      const known = exposed();
      assert.deepEqual(
        [...names].filter((n) => !known.has(n)),
        [],
      );
    });
  }
});
