// The Anvil dashboard: subscribes to the live server's WebSocket (/live) and draws the latest job's
// estimate converging with its error band, coverage and ε over time, each depot's state and reliability,
// each source's weight, and failures on a timeline. Plain ES module + uPlot (served from node_modules).

const MAX_SERIES = 6;
const COLORS = ['#58a6ff', '#3fb950', '#d29922', '#bc8cff', '#f778ba', '#79c0ff'];

const state = {
  jobId: undefined,
  t0: undefined,
  series: [], // names of the plotted series, stable for the job
  x: [],
  values: [], // per series: number[]
  lo: [],
  hi: [],
  coverage: [],
  epsilon: [],
  estimates: 0,
  depots: new Map(),
  sources: new Map(),
  events: [],
};

let estimateChart;
let coverageChart;

// Exposed for tests and the curious: how many estimates were drawn, and the charts' data.
window.anvilDashboard = {
  get estimates() {
    return state.estimates;
  },
  get points() {
    return state.x.length;
  },
  depotState: (d) => state.depots.get(d)?.state,
};

const $ = (id) => document.getElementById(id);

function fmt(n, digits = 3) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return '∞';
  const a = Math.abs(n);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return n.toExponential(2);
  return n.toFixed(digits).replace(/\.?0+$/, '') || '0';
}

function bytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function chartWidth(el) {
  return Math.max(320, el.clientWidth - 4);
}

function makeEstimateChart() {
  const el = $('chart-estimate');
  el.textContent = '';
  const series = [{ label: 't (s)' }];
  const bands = [];
  state.series.forEach((name, i) => {
    const color = COLORS[i % COLORS.length];
    const base = series.length;
    series.push({ label: name, stroke: color, width: 2 });
    series.push({ label: `${name} lo`, stroke: color + '55', width: 1, dash: [4, 4], points: { show: false } });
    series.push({ label: `${name} hi`, stroke: color + '55', width: 1, dash: [4, 4], points: { show: false } });
    bands.push({ series: [base + 2, base + 1], fill: color + '22' });
  });
  const opts = {
    width: chartWidth(el),
    height: 260,
    series,
    bands,
    scales: { x: { time: false } },
    axes: [
      { stroke: '#8a96a3', grid: { stroke: '#232b34' } },
      { stroke: '#8a96a3', grid: { stroke: '#232b34' } },
    ],
    legend: { live: false },
  };
  estimateChart = new uPlot(opts, estimateData(), el);
}

function makeCoverageChart() {
  const el = $('chart-coverage');
  el.textContent = '';
  const opts = {
    width: chartWidth(el),
    height: 200,
    series: [
      { label: 't (s)' },
      { label: 'coverage', stroke: '#3fb950', width: 2, scale: 'cov' },
      { label: 'ε', stroke: '#f85149', width: 2, scale: 'eps' },
    ],
    scales: { x: { time: false }, cov: { range: [0, 1] } },
    axes: [
      { stroke: '#8a96a3', grid: { stroke: '#232b34' } },
      { scale: 'cov', stroke: '#3fb950', grid: { stroke: '#232b34' } },
      { scale: 'eps', side: 1, stroke: '#f85149', grid: { show: false } },
    ],
    legend: { live: false },
  };
  coverageChart = new uPlot(opts, [state.x, state.coverage, state.epsilon], el);
}

function estimateData() {
  const data = [state.x];
  state.series.forEach((_, i) => data.push(state.values[i], state.lo[i], state.hi[i]));
  return data;
}

function resetJob(m) {
  state.jobId = m.jobId;
  state.t0 = m.at;
  state.series = [];
  state.x = [];
  state.values = [];
  state.lo = [];
  state.hi = [];
  state.coverage = [];
  state.epsilon = [];
  state.estimates = 0;
  $('job-name').textContent = m.name;
  setJobState('running');
  $('chart-estimate').textContent = '';
  estimateChart = undefined;
  makeCoverageChart();
}

function setJobState(s) {
  const el = $('job-state');
  el.textContent = s;
  el.dataset.state = s;
}

function onEstimate(m) {
  if (m.jobId !== state.jobId) return;
  const e = m.estimate;
  const points = e.series.slice(0, MAX_SERIES);
  if (state.series.length === 0 && points.length > 0) {
    state.series = points.map((p) => p.name);
    state.values = points.map(() => []);
    state.lo = points.map(() => []);
    state.hi = points.map(() => []);
    state.x.length = 0;
    state.coverage.length = 0;
    state.epsilon.length = 0;
  }
  state.x.push((m.at - state.t0) / 1000);
  state.series.forEach((name, i) => {
    const p = points.find((q) => q.name === name);
    state.values[i].push(p?.value ?? null);
    state.lo[i].push(p?.lo ?? p?.value ?? null);
    state.hi[i].push(p?.hi ?? p?.value ?? null);
  });
  state.coverage.push(e.coverage);
  state.epsilon.push(Number.isFinite(e.epsilon) ? e.epsilon : null);
  state.estimates++;
  if (estimateChart === undefined && state.series.length > 0) makeEstimateChart();
  else estimateChart?.setData(estimateData());
  coverageChart?.setData([state.x, state.coverage, state.epsilon]);
  $('s-eps').textContent = `${fmt(e.epsilon)} (${e.norm})`;
  $('s-delta').textContent = fmt(e.delta, 4);
  $('s-cov').textContent = `${(e.coverage * 100).toFixed(1)} %`;
  $('s-blocks').textContent = `${e.blocksUsed} / ${e.blocksMissing}`;
  $('s-bytes').textContent = bytes(e.bytesMoved);
  $('s-count').textContent = String(state.estimates);
  $('s-method').textContent = e.method;
}

function renderDepots() {
  const body = $('depots').querySelector('tbody');
  body.textContent = '';
  for (const [depot, d] of [...state.depots.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const tr = document.createElement('tr');
    tr.dataset.state = d.state;
    tr.dataset.depot = depot;
    const name = document.createElement('td');
    name.textContent = depot;
    const st = document.createElement('td');
    st.className = 'state';
    st.textContent = d.state;
    if (d.reason) st.title = d.reason;
    const rel = document.createElement('td');
    const bar = document.createElement('div');
    bar.className = 'bar';
    const fill = document.createElement('i');
    fill.style.width = `${Math.round(d.reliability * 100)}%`;
    bar.append(fill);
    bar.title = fmt(d.reliability);
    rel.append(bar);
    tr.append(name, st, rel);
    body.append(tr);
  }
}

function renderSources() {
  const box = $('sources');
  box.textContent = '';
  for (const [source, s] of [...state.sources.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const div = document.createElement('div');
    div.className = 'source';
    div.dataset.source = source;
    div.style.opacity = String(0.15 + 0.85 * Math.max(0, Math.min(1, s.weight)));
    div.textContent = `${source} · ${fmt(s.weight, 2)}`;
    div.title = `weight ${fmt(s.weight)}, reliability ${fmt(s.reliability)}`;
    box.append(div);
  }
}

function addEvent(kind, text, at) {
  state.events.push({ kind, text, at });
  if (state.events.length > 200) state.events.shift();
  const li = document.createElement('li');
  li.dataset.kind = kind;
  const t = document.createElement('time');
  t.textContent = new Date(at).toLocaleTimeString();
  li.append(t, document.createTextNode(text));
  const list = $('timeline');
  list.prepend(li);
  while (list.children.length > 200) list.lastChild.remove();
}

function onMessage(m) {
  switch (m.type) {
    case 'hello':
      // A (re)connection: the server replays its present state next.
      state.depots.clear();
      state.sources.clear();
      $('timeline').textContent = '';
      return;
    case 'job-started':
      resetJob(m);
      addEvent('info', `job started: ${m.name}`, m.at);
      return;
    case 'estimate':
      onEstimate(m);
      return;
    case 'job-done':
      if (m.jobId === state.jobId) setJobState('done');
      return;
    case 'job-failed':
      if (m.jobId === state.jobId) setJobState('failed');
      addEvent('failure', `job failed: ${m.code}: ${m.message}`, m.at);
      return;
    case 'depot-health': {
      const prev = state.depots.get(m.depot);
      state.depots.set(m.depot, m);
      // The timeline shows failures and recoveries; slow spells show in the table only.
      if (prev !== undefined && prev.state !== m.state && (m.state === 'failed' || prev.state === 'failed')) {
        addEvent(
          m.state === 'failed' ? 'failure' : 'recovery',
          `${m.depot} is ${m.state}${m.reason ? ` (${m.reason})` : ''}`,
          m.at,
        );
      }
      renderDepots();
      return;
    }
    case 'source-weight':
      state.sources.set(m.source, m);
      renderSources();
      return;
    case 'event':
      addEvent(m.kind, m.text, m.at);
      return;
    default:
      return;
  }
}

let retry = 250;
function connect() {
  const conn = $('conn');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/live`);
  ws.onopen = () => {
    retry = 250;
    conn.dataset.state = 'open';
    conn.textContent = 'live';
  };
  ws.onmessage = (ev) => {
    try {
      onMessage(JSON.parse(ev.data));
    } catch (e) {
      console.error('dashboard: bad message', e);
    }
  };
  ws.onclose = () => {
    conn.dataset.state = 'closed';
    conn.textContent = 'reconnecting…';
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 4000);
  };
}

window.addEventListener('resize', () => {
  estimateChart?.setSize({ width: chartWidth($('chart-estimate')), height: 260 });
  coverageChart?.setSize({ width: chartWidth($('chart-coverage')), height: 200 });
});

connect();
