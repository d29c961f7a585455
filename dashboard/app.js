/**
 * Headroom's dashboard: one page over the coordinator's read-only JSON endpoints (/api/*) and its event
 * stream (/events). A live event updates the state it concerns (the runs, the queue, the history page);
 * what is drawn is capped (one host's timeline, rows and tables paged) so 50 hosts × 40 VMs stay usable.
 */
import { h, render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);
const ROWS_PER_PAGE = 40;
const HOSTS_PER_PAGE = 20;
const HISTORY_PER_PAGE = 50;
const RANGES = { '10 min': 600_000, '1 h': 3_600_000, '6 h': 21_600_000, '24 h': 86_400_000 };
// ?range=10 min (a label of RANGES) opens the page on that range: a link can say what it shows.
const START_RANGE = RANGES[new URLSearchParams(location.search).get('range')] ?? RANGES['1 h'];
const RUN_EVENTS = ['GRANTED', 'RESTORED', 'RELEASED', 'EXPIRED', 'REVOKED'];
const ENDS = new Set(['RELEASED', 'EXPIRED', 'REVOKED']);

const kindOf = (k) => (k === 'TOKEN_KIND_HYPERVISOR' ? 'hypervisor' : 'guest');
const typeOf = (t) => t.replace('HISTORY_EVENT_TYPE_', '');
// The CLI's format (common/util/human.ts), not the browser locale's: 14:03:07 today, else with the date.
const pad = (n) => String(n).padStart(2, '0');
const dateOf = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const clockOf = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
const time = (ms) => {
  if (!ms) return '–';
  const d = new Date(ms);
  return dateOf(d) === dateOf(new Date()) ? clockOf(d) : `${dateOf(d)} ${clockOf(d)}`;
};
// A history spans days: every row has its date, as in headroomctl history.
const dateTime = (ms) => (ms ? `${dateOf(new Date(ms))} ${clockOf(new Date(ms))}` : '–');
const vmLabel = (e) => e.vmName || e.vm;

async function get(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `${path}: ${response.status}`);
  return body;
}

/** Runs from history events: a GRANTED (or RESTORED) opens one, the token's end closes it. */
function addRuns(runs, events) {
  const next = new Map(runs);
  for (const e of events) {
    const type = typeOf(e.type);
    if (!e.tokenId || !RUN_EVENTS.includes(type)) continue;
    const run = next.get(e.tokenId) ?? { vm: vmLabel(e), job: e.job, kind: kindOf(e.kind), start: e.atUnixMs };
    next.set(e.tokenId, ENDS.has(type) ? { ...run, end: e.atUnixMs, outcome: type } : run);
  }
  return next;
}

function Timeline({ host, plan, runs, now, rangeMs }) {
  const [page, setPage] = useState(0);
  const from = now - (rangeMs * 2) / 3;
  const to = now + rangeMs / 3;
  const rows = useMemo(() => {
    const vms = new Set();
    for (const r of runs.values()) if (r.end === undefined || r.end >= from) vms.add(r.vm);
    for (const s of plan?.slots ?? []) vms.add(s.vm);
    return [...vms].sort();
  }, [runs, plan, from]);
  const shown = rows.slice(page * ROWS_PER_PAGE, (page + 1) * ROWS_PER_PAGE);
  const left = 120;
  const width = 1000;
  const rowHeight = 22;
  const x = (ms) => left + ((Math.min(Math.max(ms, from), to) - from) / (to - from)) * (width - left);
  const y = (vm) => 20 + shown.indexOf(vm) * rowHeight;
  const bars = [];
  for (const s of plan?.slots ?? []) {
    if (!shown.includes(s.vm) || s.endUnixMs < from || s.startUnixMs > to) continue;
    bars.push(
      html`<rect
        class="slot planned-slot"
        data-kind=${kindOf(s.kind)}
        x=${x(s.startUnixMs)}
        y=${y(s.vm) + 2}
        width=${Math.max(2, x(s.endUnixMs) - x(s.startUnixMs))}
        height=${rowHeight - 6}
        fill="none"
        stroke=${`var(--${kindOf(s.kind)})`}
        stroke-dasharray="4 2"
        ><title>planned ${s.vm} ${s.job}</title></rect
      >`,
    );
  }
  for (const [id, r] of runs) {
    const end = r.end ?? now;
    if (!shown.includes(r.vm) || end < from || r.start > to) continue;
    bars.push(
      html`<rect
        key=${id}
        class=${`run run-${r.kind}`}
        data-kind=${r.kind}
        x=${x(r.start)}
        y=${y(r.vm) + 4}
        width=${Math.max(2, x(end) - x(r.start))}
        height=${rowHeight - 10}
        fill=${`var(--${r.kind})`}
      >
        <title>${r.kind} ${r.vm} ${r.job} ${time(r.start)}–${r.end ? time(r.end) : 'running'}</title></rect
      >`,
    );
  }
  const ticks = Array.from({ length: 7 }, (_, i) => from + ((to - from) * i) / 6);
  const height = 30 + shown.length * rowHeight;
  return html`<section id="timeline">
    <h2>Timeline of ${host}</h2>
    <div class="legend">
      <span><i class="swatch guest"></i>guest run</span><span><i class="swatch hypervisor"></i>hypervisor run</span>
      <span><i class="swatch planned"></i>planned slot</span><span style="color: var(--now)">| now</span>
    </div>
    <svg viewBox=${`0 0 ${width} ${height}`} width="100%" role="img" aria-label=${`timeline of ${host}`}>
      ${ticks.map(
        (t, i) =>
          html`<g
            ><line x1=${x(t)} x2=${x(t)} y1="14" y2=${height} stroke="#e5e7eb" />
            <text
              class="tick"
              x=${x(t)}
              y="10"
              text-anchor=${i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle'}
              >${time(t)}</text
            ></g
          >`,
      )}
      ${shown.map((vm) => html`<text class="vm-row" x="4" y=${y(vm) + 15}>${vm}</text>`)} ${bars}
      <line class="now" x1=${x(now)} x2=${x(now)} y1="14" y2=${height} stroke="var(--now)" stroke-width="2" />
    </svg>
    ${rows.length === 0 && html`<p class="muted">no runs or planned slots in this range</p>`}
    ${rows.length > ROWS_PER_PAGE && html`<${Pager} page=${page} pages=${Math.ceil(rows.length / ROWS_PER_PAGE)} set=${setPage} />`}
    ${plan?.unplaced?.length > 0 && html`<p>Left out of the plan: ${plan.unplaced.map((u) => `${u.vm}/${u.job} (${u.reason})`).join('; ')}</p>`}
  </section>`;
}

function Pager({ page, pages, set }) {
  return html`<div class="pager">
    <button disabled=${page === 0} onClick=${() => set(page - 1)}>‹</button>
    <span>${page + 1} / ${pages}</span>
    <button disabled=${page + 1 >= pages} onClick=${() => set(page + 1)}>›</button>
  </div>`;
}

function Queue({ tokens }) {
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

function Hosts({ hosts, agents, selected, select }) {
  const [page, setPage] = useState(0);
  const ofHost = useMemo(() => agents.filter((a) => a.host === selected), [agents, selected]);
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
    <h2 style="margin-top:1rem">Agents of ${selected}</h2>
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
            <td>${a.vmName || a.vm}</td>
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

function History({ hosts, live }) {
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

function App() {
  const [view, setView] = useState('timeline');
  const [hosts, setHosts] = useState({ hosts: [], agents: [] });
  const [selected, setSelected] = useState('');
  const [plan, setPlan] = useState(undefined);
  const [runs, setRuns] = useState(new Map());
  const [tokens, setTokens] = useState({ active: [], queued: [] });
  const [live, setLive] = useState([]);
  const [connected, setConnected] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [rangeMs, setRangeMs] = useState(START_RANGE);
  const [error, setError] = useState('');
  const fail = (e) => setError(e.message);

  const loadHosts = () =>
    get('/api/hosts')
      .then((r) => {
        setHosts(r);
        setSelected((s) => s || r.hosts[0]?.host || '');
      })
      .catch(fail);
  const loadTokens = (host) => get(`/api/tokens?host=${encodeURIComponent(host)}`).then(setTokens, fail);
  // The plan only as far ahead as the timeline shows: a day of 20-second jobs is thousands of slots.
  const horizonMs = useRef(START_RANGE);
  horizonMs.current = Math.ceil(rangeMs / 3);
  const loadPlan = (host) =>
    get(`/api/plan?host=${encodeURIComponent(host)}&horizonMs=${horizonMs.current}`).then(setPlan, fail);
  useEffect(() => {
    if (selected) loadPlan(selected);
  }, [rangeMs]);

  useEffect(() => {
    loadHosts();
    const hostsTimer = setInterval(loadHosts, 10_000);
    const clock = setInterval(() => setNow(Date.now()), 1_000);
    return () => [hostsTimer, clock].forEach(clearInterval);
  }, []);

  // The selected host's runs of the last day, its plan and queue; then the event stream keeps them current.
  useEffect(() => {
    if (!selected) return undefined;
    const q = new URLSearchParams({ host: selected, limit: '1000', since: String(Date.now() - RANGES['24 h']) });
    RUN_EVENTS.forEach((t) => q.append('type', `HISTORY_EVENT_TYPE_${t}`));
    get(`/api/history?${q}`).then((r) => setRuns(addRuns(new Map(), r.events)), fail);
    loadPlan(selected);
    loadTokens(selected);
    const planTimer = setInterval(() => loadPlan(selected), 30_000);
    let refresh;
    const source = new EventSource(`/events?host=${encodeURIComponent(selected)}`);
    source.onopen = () => setConnected(true);
    source.onerror = () => setConnected(false);
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      setRuns((old) => addRuns(old, [event]));
      setLive([event]);
      // A burst of events asks for the queue (and the plan it changes) once.
      clearTimeout(refresh);
      refresh = setTimeout(() => {
        loadTokens(selected);
        loadPlan(selected);
      }, 250);
    };
    return () => {
      source.close();
      clearInterval(planTimer);
      clearTimeout(refresh);
    };
  }, [selected]);

  const tab = (name, label) =>
    html`<button class=${view === name ? 'active' : ''} data-view=${name} onClick=${() => setView(name)}>
      ${label}
    </button>`;
  return html`<div>
    <header>
      <h1>Headroom</h1>
      <nav>${tab('timeline', 'Timeline')}${tab('hosts', 'Hosts & agents')}${tab('history', 'History')}</nav>
      <span class=${connected ? 'live on' : 'live'}>${connected ? 'live' : 'not connected'}</span>
      <span class="muted">read-only</span>
    </header>
    ${error && html`<section class="error">${error}</section>`}
    ${
      view === 'timeline' &&
      html`<div>
        <section class="controls">
          <label
            >host
            <select onChange=${(e) => setSelected(e.target.value)} value=${selected}>
              ${hosts.hosts.map((h) => html`<option>${h.host}</option>`)}
            </select></label
          >
          <label
            >range
            <select onChange=${(e) => setRangeMs(Number(e.target.value))} value=${rangeMs}>
              ${Object.entries(RANGES).map(([label, ms]) => html`<option value=${ms}>${label}</option>`)}
            </select></label
          >
        </section>
        <${Timeline} host=${selected} plan=${plan} runs=${runs} now=${now} rangeMs=${rangeMs} />
        <${Queue} tokens=${tokens} />
      </div>`
    }
    ${view === 'hosts' && html`<${Hosts} hosts=${hosts.hosts} agents=${hosts.agents} selected=${selected} select=${setSelected} />`}
    ${view === 'history' && html`<${History} hosts=${hosts.hosts} live=${live} />`}
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
