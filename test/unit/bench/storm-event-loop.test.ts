import { strict as assert } from 'node:assert';
import { declaredDay } from '../../../bench/storm-event-loop';
import { PLAN_NOW, scenario } from '../../../bench/storm-scenario';
import { buildPlanView } from '../../../coordinator/planning/plan-view';

describe('storm bench: the day declared as agents would declare it', () => {
  it('declares each job of a VM once, and the plan of the declarations holds every run of the scenario at its time', () => {
    const { host, jobs } = scenario(10, 3);
    const input = declaredDay(jobs, host, PLAN_NOW);
    const names = input.declared.flatMap((d) => d.jobs.map((j) => `${d.vm}/${j.name}`));
    assert.equal(new Set(names).size, names.length, 'a job declared twice');
    assert.equal(new Set(names).size, new Set(jobs.map((j) => j.id.slice(0, j.id.indexOf('@')))).size);

    const view = buildPlanView(input);
    // Cron times are local: read the runs' times back as the wall-clock times of the scenario (UTC).
    const shift = input.now - PLAN_NOW;
    const runs = new Set(
      [...view.slots, ...view.unplaced].map(
        (r) => `${r.vm}/${r.job}@${r.earliestStart - shift}/${r.windowEnd - r.earliestStart}`,
      ),
    );
    const missing = jobs.filter(
      (j) =>
        !runs.has(
          `${j.vm}/${j.id.slice(j.vm.length + 1, j.id.indexOf('@'))}@${j.earliestStart}/${j.windowEnd - j.earliestStart}`,
        ),
    );
    assert.deepEqual(
      missing.map((j) => j.id),
      [],
    );
  });
});
