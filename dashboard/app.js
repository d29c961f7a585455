/**
 * Headroom's dashboard: one page over the coordinator's read-only JSON endpoints (/api/*) and its event
 * stream (/events). A live event updates the state it concerns (the runs, the queue, the history page, the
 * VM shown, the load strip); what is drawn stays bounded (timeline rows virtualised, every host aggregated
 * to a row, tables paged) so 50 hosts × 40 VMs stay usable. ?vm=NAME opens a VM, ?host=H a host (* all).
 */
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { get, html, kindOf, typeOf, vmLabel } from './format.js';
import { LoadStrip, pausesOf } from './load-strip.js';
import { History, Hosts, Queue } from './tables.js';
import { Overview, Timeline, axisOf } from './timeline.js';
import { VmView } from './vm-view.js';

const RANGES = { '10 min': 600_000, '1 h': 3_600_000, '6 h': 21_600_000, '24 h': 86_400_000 };
const DAY = RANGES['24 h'];
/** The host selector's value for every host at once. */
const ALL = '*';
const RUN_EVENTS = ['GRANTED', 'RESTORED', 'RELEASED', 'EXPIRED', 'REVOKED'];
const PAUSE_EVENTS = ['HOST_PAUSED', 'HOST_RESUMED'];
const ENDS = new Set(['RELEASED', 'EXPIRED', 'REVOKED']);
/** Load samples the page keeps: the coordinator's ring per host (coordinator/dashboard/load-ring.ts). */
const MAX_SAMPLES = 1_440;
const MAX_MARKS = 500;

const params = () => new URLSearchParams(location.search);
// ?range=10 min (a label of RANGES) opens the page on that range: a link can say what it shows.
const START_RANGE = RANGES[params().get('range')] ?? RANGES['1 h'];

/** Runs from history events: a GRANTED (or RESTORED) opens one, the token's end closes it. */
function addRuns(runs, events) {
  const next = new Map(runs);
  for (const e of events) {
    const type = typeOf(e.type);
    if (!e.tokenId || !RUN_EVENTS.includes(type)) continue;
    const run = next.get(e.tokenId) ?? {
      host: e.host,
      vm: vmLabel(e),
      job: e.job,
      kind: kindOf(e.kind),
      start: e.atUnixMs,
    };
    next.set(e.tokenId, ENDS.has(type) ? { ...run, end: e.atUnixMs, outcome: type } : run);
  }
  return next;
}

/** Runs as /api/runs answers them: the running ones by token (the event stream ends them), the others done. */
function runsOf(hosts) {
  const runs = new Map();
  for (const h of hosts)
    for (const r of h.runs) {
      const run = { host: h.host, vm: r.vm, job: r.job, kind: kindOf(r.kind), start: r.startUnixMs };
      if (r.tokenId) runs.set(r.tokenId, run);
      else runs.set(`${r.vm}/${r.job}/${r.startUnixMs}`, { ...run, end: r.endUnixMs, outcome: r.state });
    }
  return runs;
}

const hostQuery = (host) => (host === ALL ? '' : `host=${encodeURIComponent(host)}`);
const pausesQuery = (host) => {
  const q = new URLSearchParams({ host, limit: '1000', since: String(Date.now() - DAY) });
  PAUSE_EVENTS.forEach((t) => q.append('type', `HISTORY_EVENT_TYPE_${t}`));
  return `/api/history?${q}`;
};

function App() {
  const [view, setView] = useState(params().get('vm') ? 'vm' : 'timeline');
  const [vm, setVm] = useState(params().get('vm') ?? '');
  const [vmChanged, setVmChanged] = useState(0);
  const [hosts, setHosts] = useState({ hosts: [], agents: [] });
  const [selected, setSelected] = useState(params().get('host') ?? '');
  const [plan, setPlan] = useState(undefined);
  const [runs, setRuns] = useState(new Map());
  const [tokens, setTokens] = useState({ active: [], queued: [] });
  const [load, setLoad] = useState({ samples: [], marks: [] });
  const [pauseEvents, setPauseEvents] = useState([]);
  const [live, setLive] = useState([]);
  const [connected, setConnected] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [rangeMs, setRangeMs] = useState(START_RANGE);
  const [error, setError] = useState('');
  const fail = (e) => setError(e.message);
  const vmRef = useRef(vm);
  vmRef.current = view === 'vm' ? vm : '';

  const loadHosts = () =>
    get('/api/hosts')
      .then((r) => {
        setHosts(r);
        setSelected((s) => s || r.hosts[0]?.host || '');
      })
      .catch(fail);
  const loadTokens = (host) => get(`/api/tokens?${hostQuery(host)}`).then(setTokens, fail);
  // The plan only as far ahead as the timeline shows: a day of 20-second jobs is thousands of slots.
  const horizonMs = useRef(START_RANGE);
  horizonMs.current = Math.ceil(rangeMs / 3);
  const loadPlan = (host) =>
    host === ALL
      ? setPlan(undefined)
      : get(`/api/plan?host=${encodeURIComponent(host)}&horizonMs=${horizonMs.current}`).then(setPlan, fail);
  useEffect(() => {
    if (selected) loadPlan(selected);
  }, [rangeMs]);

  const showUrl = (query) => history.pushState(null, '', `${location.pathname}${query ? `?${query}` : ''}`);
  const openVm = (name) => {
    showUrl(new URLSearchParams({ vm: name }));
    setVm(name);
    setView('vm');
  };
  const openHost = (host) => {
    showUrl(new URLSearchParams({ host }));
    setSelected(host);
    setView('timeline');
  };
  useEffect(() => {
    loadHosts();
    const hostsTimer = setInterval(loadHosts, 10_000);
    const clock = setInterval(() => setNow(Date.now()), 1_000);
    const back = () => {
      setVm(params().get('vm') ?? '');
      setView(params().get('vm') ? 'vm' : 'timeline');
    };
    addEventListener('popstate', back);
    return () => {
      [hostsTimer, clock].forEach(clearInterval);
      removeEventListener('popstate', back);
    };
  }, []);

  // The selected host's (or every host's) runs of the last day, its plan, queue and load; then the event
  // stream keeps them current.
  useEffect(() => {
    if (!selected) return undefined;
    get(`/api/runs?since=${Date.now() - DAY}&${hostQuery(selected)}`).then((r) => setRuns(runsOf(r.hosts)), fail);
    loadPlan(selected);
    loadTokens(selected);
    setLoad({ samples: [], marks: [] });
    setPauseEvents([]);
    if (selected !== ALL) {
      get(`/api/load?host=${encodeURIComponent(selected)}`).then(setLoad, fail);
      get(pausesQuery(selected)).then((r) => setPauseEvents(r.events), fail);
    }
    const planTimer = setInterval(() => loadPlan(selected), 30_000);
    let refresh;
    const source = new EventSource(`/events?${hostQuery(selected)}`);
    source.onopen = () => setConnected(true);
    source.onerror = () => {
      setConnected(false);
      // A 503 (every stream the coordinator allows is open) closes the source for good: say so.
      if (source.readyState === EventSource.CLOSED)
        setError('live updates refused: the coordinator has as many dashboard pages open as it allows; reload later');
    };
    source.onmessage = (message) => {
      const event = JSON.parse(message.data);
      setRuns((old) => addRuns(old, [event]));
      setLive([event]);
      if (PAUSE_EVENTS.includes(typeOf(event.type))) setPauseEvents((old) => [...old, event]);
      if (vmRef.current && (event.vm === vmRef.current || event.vmName === vmRef.current)) setVmChanged((n) => n + 1);
      // A burst of events asks for the queue (and the plan it changes) once.
      clearTimeout(refresh);
      refresh = setTimeout(() => {
        loadTokens(selected);
        loadPlan(selected);
      }, 250);
    };
    source.addEventListener('load', (message) => {
      const sample = JSON.parse(message.data);
      setLoad((old) => ({ ...old, samples: [...old.samples, sample].slice(-MAX_SAMPLES) }));
    });
    source.addEventListener('budget', (message) => {
      const mark = JSON.parse(message.data);
      setLoad((old) => ({ ...old, marks: [...old.marks, mark].slice(-MAX_MARKS) }));
    });
    return () => {
      source.close();
      clearInterval(planTimer);
      clearTimeout(refresh);
    };
  }, [selected]);

  const axis = axisOf(now, rangeMs);
  const tab = (name, label) =>
    html`<button class=${view === name ? 'active' : ''} data-view=${name} onClick=${() => setView(name)}>
      ${label}
    </button>`;
  return html`<div>
    <header>
      <h1>Headroom</h1>
      <nav>
        ${tab('timeline', 'Timeline')}${tab('hosts', 'Hosts & agents')}${tab('history', 'History')}
        ${view === 'vm' && tab('vm', `VM ${vm}`)}
      </nav>
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
            <select name="host" onChange=${(e) => openHost(e.target.value)} value=${selected}>
              <option value=${ALL}>all hosts</option>
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
        <section id="timeline">
          <h2>${selected === ALL ? 'Timeline of every host' : `Timeline of ${selected}`}</h2>
          <div class="legend">
            <span><i class="swatch guest"></i>guest run</span
            ><span><i class="swatch hypervisor"></i>hypervisor run</span>
            <span><i class="swatch planned"></i>planned slot</span><span style="color: var(--now)">| now</span>
          </div>
          ${
            selected === ALL
              ? html`<${Overview} hosts=${hosts.hosts} runs=${runs} now=${now} axis=${axis} openHost=${openHost} />`
              : html`<${Timeline}
                  host=${selected}
                  plan=${plan}
                  runs=${runs}
                  now=${now}
                  axis=${axis}
                  openVm=${openVm}
                />`
          }
        </section>
        ${
          selected !== ALL &&
          html`<${LoadStrip}
            host=${selected}
            axis=${axis}
            now=${now}
            samples=${load.samples}
            marks=${load.marks}
            pauses=${pausesOf(pauseEvents)}
          />`
        }
        <${Queue} tokens=${tokens} />
      </div>`
    }
    ${
      view === 'vm' &&
      html`<${VmView}
        vm=${vm}
        changed=${vmChanged}
        back=${() => openHost(selected || ALL)}
        found=${(v) => setSelected((s) => (s === ALL ? s : v.host))}
      />`
    }
    ${
      view === 'hosts' &&
      html`<${Hosts}
        hosts=${hosts.hosts}
        agents=${hosts.agents}
        selected=${selected === ALL ? '' : selected}
        select=${setSelected}
        openVm=${openVm}
      />`
    }
    ${view === 'history' && html`<${History} hosts=${hosts.hosts} live=${live} />`}
  </div>`;
}

render(html`<${App} />`, document.getElementById('app'));
