/** The page's tables: running and queued tokens, hosts and their agents, and the filtered history. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { dateTime, get, html, kindOf, time, typeOf, vmLabel } from './format.js';

const ROWS_PER_PAGE = 40;
const HOSTS_PER_PAGE = 20;
const HISTORY_PER_PAGE = 50;

export function Pager({ page, pages, set }) {
  return html`<div class="pager">
    <button disabled=${page === 0} onClick=${() => set(page - 1)}>‹</button>
    <span>${page + 1} / ${pages}</span>
    <button disabled=${page + 1 >= pages} onClick=${() => set(page + 1)}>›</button>
  </div>`;
}

export function Queue({ tokens }) {
  return html`<section id="queue">
    <h2>Running and queued</h2>
    <table>
      <tr>
        <th>VM</th>
        <th>job</th>
        <th>kind</th>
        <th>state</th>
        <th>since</th>
        <th>why</th>
      </tr>
      ${tokens.active.map(
        (t) =>
          html`<tr key=${t.tokenId}>
            <td>${t.vm}</td>
            <td>${t.job}</td>
            <td>${kindOf(t.kind)}</td>
            <td>running</td>
            <td>${time(t.grantedUnixMs)}</td>
            <td></td>
          </tr>`,
      )}
      ${tokens.queued.map(
        (q) =>
          html`<tr class="queued" key=${q.request.requestId}>
            <td>${q.request.vm}</td>
            <td>${q.request.job}</td>
            <td>${kindOf(q.request.kind)}</td>
            <td>queued #${q.position}</td>
            <td>${time(q.queuedUnixMs)}</td>
            <td class="reason">${q.waitingFor}</td>
          </tr>`,
      )}
    </table>
    ${tokens.active.length + tokens.queued.length === 0 && html`<p class="muted">nothing running or queued</p>`}
  </section>`;
}

export function Hosts({ hosts, agents, selected, select, openVm }) {
  const [page, setPage] = useState(0);
  // No host selected (every host's timeline): every agent.
  const ofHost = useMemo(() => agents.filter((a) => !selected || a.host === selected), [agents, selected]);
  return html`<section id="hosts">
    <h2>Hosts and agents</h2>
    <table>
      <tr>
        <th>host</th>
        <th>state</th>
        <th>agents</th>
        <th>guest / hypervisor running</th>
        <th>queued</th>
      </tr>
      ${hosts.slice(page * HOSTS_PER_PAGE, (page + 1) * HOSTS_PER_PAGE).map(
        (h) =>
          html` <tr
            key=${h.host}
            onClick=${() => select(h.host)}
            style=${h.host === selected ? 'font-weight:600' : 'cursor:pointer'}
          >
            <td>${h.host}</td>
            <td>${h.paused ? `paused: ${h.pauseReason}` : 'running'}</td>
            <td>${h.agentsConnected} connected</td>
            <td>${h.activeGuest} / ${h.activeHypervisor}</td>
            <td>${h.queued}</td>
          </tr>`,
      )}
    </table>
    ${hosts.length > HOSTS_PER_PAGE && html`<${Pager} page=${page} pages=${Math.ceil(hosts.length / HOSTS_PER_PAGE)} set=${setPage} />`}
    <h2 style="margin-top:1rem">Agents of ${selected || 'every host'}</h2>
    <table>
      <tr>
        <th>VM</th>
        <th>hostname</th>
        <th>connected</th>
        <th>last hello</th>
        <th>CPU</th>
        <th>load 1 min</th>
        <th>jobs</th>
      </tr>
      ${ofHost.slice(0, ROWS_PER_PAGE).map(
        (a) =>
          html`<tr key=${a.vm}>
            <td><button class="link" onClick=${() => openVm(a.vmName || a.vm)}>${a.vmName || a.vm}</button></td>
            <td>${a.hostname}</td>
            <td>${a.connected ? 'yes' : 'no'}</td>
            <td>${time(a.lastHelloUnixMs)}</td>
            <td>${a.lastLoad ? `${a.lastLoad.cpuPercent.toFixed(0)} %` : '–'}</td>
            <td>${a.lastLoad?.load1?.toFixed(2) ?? '–'}</td>
            <td>${a.jobs.map((j) => j.name).join(', ')}</td>
          </tr>`,
      )}
    </table>
  </section>`;
}

export function History({ hosts, live }) {
  const [filter, setFilter] = useState({ host: '', vm: '', kind: '', type: '' });
  const [events, setEvents] = useState([]);
  const [page, setPage] = useState(0);
  const [error, setError] = useState('');
  const matches = (e) =>
    (!filter.host || e.host === filter.host) &&
    (!filter.vm || e.vm === filter.vm || e.vmName === filter.vm) &&
    (!filter.kind || kindOf(e.kind) === filter.kind) &&
    (!filter.type || typeOf(e.type) === filter.type);
  useEffect(() => {
    const q = new URLSearchParams({ limit: '1000' });
    if (filter.host) q.set('host', filter.host);
    if (filter.vm) q.set('vm', filter.vm);
    if (filter.type) q.set('type', `HISTORY_EVENT_TYPE_${filter.type}`);
    get(`/api/history?${q}`)
      .then((r) => {
        setEvents(r.events.filter(matches).reverse());
        setError('');
      })
      .catch((e) => setError(e.message));
    setPage(0);
  }, [filter.host, filter.vm, filter.type, filter.kind]);
  useEffect(() => {
    const fresh = live.filter(matches);
    if (fresh.length) setEvents((old) => [...fresh.reverse(), ...old].slice(0, 1000));
  }, [live]);
  const field = (name) => (e) => setFilter({ ...filter, [name]: e.target.value });
  return html`<section id="history">
    <h2>History</h2>
    <div class="controls">
      <label
        >host
        <select name="host" onChange=${field('host')}>
          <option value="">all</option>
          ${hosts.map((h) => html`<option>${h.host}</option>`)}
        </select></label
      >
      <label>VM <input name="vm" placeholder="any" onChange=${field('vm')} /></label>
      <label
        >kind
        <select name="kind" onChange=${field('kind')}>
          <option value="">all</option>
          <option>guest</option>
          <option>hypervisor</option>
        </select></label
      >
      <label
        >event
        <select name="type" onChange=${field('type')}>
          <option value="">all</option>
          ${['GRANTED', 'RELEASED', 'EXPIRED', 'REVOKED', 'DENIED', 'CANCELLED', 'HOST_PAUSED', 'HOST_RESUMED', 'POLICY_CHANGED', 'RESTORED'].map((t) => html`<option>${t}</option>`)}
        </select></label
      >
      ${error && html`<span class="error">${error}</span>`}
    </div>
    <table>
      <tr>
        <th>#</th>
        <th>time</th>
        <th>event</th>
        <th>host</th>
        <th>VM</th>
        <th>job</th>
        <th>kind</th>
        <th>detail</th>
      </tr>
      ${events.slice(page * HISTORY_PER_PAGE, (page + 1) * HISTORY_PER_PAGE).map(
        (e) =>
          html`<tr key=${e.seq} class="event">
            <td>${e.seq}</td>
            <td>${dateTime(e.atUnixMs)}</td>
            <td>${typeOf(e.type)}</td>
            <td>${e.host}</td>
            <td>${vmLabel(e)}</td>
            <td>${e.job}</td>
            <td>${e.kind === 'TOKEN_KIND_UNSPECIFIED' ? '' : kindOf(e.kind)}</td>
            <td>${e.detail}</td>
          </tr>`,
      )}
    </table>
    ${events.length > HISTORY_PER_PAGE && html`<${Pager} page=${page} pages=${Math.ceil(events.length / HISTORY_PER_PAGE)} set=${setPage} />`}
  </section>`;
}
