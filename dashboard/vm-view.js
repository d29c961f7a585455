/**
 * One VM (/?vm=NAME, or a click on its row): each job's last and next run with its outcome, duration,
 * bytes and consistency, its recent runs, and its backup chains in the catalogs the coordinator knows, with
 * each backup's check (its file and its chain's files present at their recorded sizes) and its last
 * checksum verification through this coordinator.
 */
import { useEffect, useState } from 'preact/hooks';
import { dateTime, duration, get, html, kindOf, size, time } from './format.js';

const outcomeOf = (r) => (r.state === 'released' ? (r.success ? 'success' : 'failed') : r.state);
const consistencyOf = (c) => (c ? c.replace('CONSISTENCY_', '').toLowerCase() : '–');

function RunCells({ run }) {
  if (!run) return html`<td colspan="5" class="muted">never ran</td>`;
  return html`<td>${dateTime(run.endedUnixMs)}</td>
    <td class=${`outcome outcome-${outcomeOf(run)}`} title=${run.message}>${outcomeOf(run)}</td>
    <td>${duration(run.durationMs)}</td>
    <td class="bytes">${size(run.bytes)}</td>
    <td>${consistencyOf(run.consistency)}</td>`;
}

/** The last checksum verification this coordinator ran of a backup (headroomctl verify), if any. */
function Verified({ v }) {
  if (!v) return html`<td class="muted" title="not verified since the coordinator started">–</td>`;
  if (v.ok) return html`<td class="ok">checksum ok ${dateTime(v.atUnixMs)}</td>`;
  return html`<td class="error" title=${v.problem}>checksum failed ${dateTime(v.atUnixMs)}</td>`;
}

function Catalog({ catalog }) {
  const disks = new Map();
  for (const b of catalog.backups) {
    const key = `${b.vm}/${b.disk}`;
    if (!disks.has(key)) disks.set(key, []);
    disks.get(key).push(b);
  }
  return html`<div class="catalog">
    <h3>${catalog.dir}</h3>
    ${catalog.unavailable && html`<p class="muted">${catalog.unavailable}</p>`}
    ${!catalog.unavailable && disks.size === 0 && html`<p class="muted">no backups of this VM here</p>`}
    ${catalog.omitted > 0 && html`<p class="muted">${catalog.omitted} older backups not listed</p>`}
    ${[...disks].map(
      ([disk, backups]) =>
        html`<h4>disk ${disk}</h4>
          <table class="chain">
            <tr>
              <th>backup</th>
              <th>kind</th>
              <th>taken</th>
              <th>copied</th>
              <th>file</th>
              <th>consistency</th>
              <th>check</th>
              <th>verified</th>
            </tr>
            ${backups.map(
              (b) =>
                html`<tr key=${b.id} class="backup">
                  <td>${b.parentId ? '└ ' : ''}${b.id}</td>
                  <td title=${b.fullReason}>${b.kind === 'BACKUP_KIND_FULL' ? 'full' : 'incremental'}</td>
                  <td>${dateTime(b.takenUnixMs)}</td>
                  <td>${size(b.bytes)}</td>
                  <td>${size(b.fileBytes)}</td>
                  <td>${consistencyOf(b.consistency)}</td>
                  <td class=${b.chainProblem ? 'error' : 'ok'}>${b.chainProblem || 'restorable'}</td>
                  <${Verified} v=${b.verified} />
                </tr>`,
            )}
          </table>`,
    )}
    ${catalog.problems.map((p) => html`<p class="error">${p.problem}</p>`)}
  </div>`;
}

/** `changed` changes whenever an event concerns this VM: the view is asked for again. */
export function VmView({ vm, changed, back, found }) {
  const [view, setView] = useState(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    get(`/api/vm?vm=${encodeURIComponent(vm)}`).then(
      (v) => {
        setView(v);
        setError('');
        found(v);
      },
      (e) => setError(e.message),
    );
  }, [vm, changed]);
  if (error) return html`<section id="vm" class="error">${error}</section>`;
  if (!view) return html`<section id="vm"><p class="muted">loading ${vm}…</p></section>`;
  return html`<section id="vm">
    <h2>
      <button class="link" onClick=${back}>‹ timeline</button> VM ${view.vmName || view.vm}
      <span class="muted">${view.vmName ? view.vm : ''} on ${view.host}</span>
    </h2>
    <p class="muted">
      ${
        view.agent
          ? `agent ${view.agent.hostname}: ${view.agent.connected ? 'connected' : 'not connected'}, last hello ${time(view.agent.lastHelloUnixMs)}`
          : 'no agent has said hello from this VM'
      }
    </p>
    <h3>Jobs</h3>
    <table id="vm-jobs">
      <tr>
        <th>kind</th>
        <th>job</th>
        <th>last run ended</th>
        <th>outcome</th>
        <th>duration</th>
        <th>bytes</th>
        <th>consistency</th>
        <th>next run</th>
      </tr>
      ${view.jobs.map(
        (j) =>
          html`<tr key=${`${j.kind}/${j.job}`} class="job">
            <td>${kindOf(j.kind)}</td>
            <td>${j.job}</td>
            <${RunCells} run=${j.last} />
            <td>
              ${
                j.runningSinceUnixMs
                  ? `running since ${time(j.runningSinceUnixMs)}`
                  : j.next
                    ? time(j.next.startUnixMs)
                    : html`<span class="muted">not planned in the next 24 h</span>`
              }
            </td>
          </tr>`,
      )}
    </table>
    ${view.jobs.length === 0 && html`<p class="muted">no jobs known for this VM</p>`}
    <h3>Recent runs</h3>
    <table id="vm-runs">
      <tr>
        <th>kind</th>
        <th>job</th>
        <th>started</th>
        <th>ended</th>
        <th>outcome</th>
        <th>duration</th>
        <th>bytes</th>
        <th>consistency</th>
      </tr>
      ${view.runs.map(
        (r, i) =>
          html`<tr key=${i} class="run-row">
            <td>${kindOf(r.kind)}</td>
            <td>${r.job}</td>
            <td>${dateTime(r.grantedUnixMs)}</td>
            <${RunCells} run=${r} />
          </tr>`,
      )}
    </table>
    <h3>Backup chains</h3>
    ${
      view.catalogs.length === 0 &&
      html`<p class="muted">
        the coordinator knows no backup catalog (backups.dir or a hypervisor job's target in coordinator.yaml)
      </p>`
    }
    ${view.catalogs.map((c) => html`<${Catalog} key=${c.dir} catalog=${c} />`)}
  </section>`;
}
