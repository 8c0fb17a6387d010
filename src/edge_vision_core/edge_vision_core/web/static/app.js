// edge_vision live view: the stream is an MJPEG <img>; the state is polled as JSON.
'use strict';
const token = new URLSearchParams(window.location.search).get('token');
const withToken = (path) => token ? `${path}?token=${encodeURIComponent(token)}` : path;
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const LEVELS = ['ok', 'warn', 'error', 'stale'];

function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      td.textContent = cell;
      tr.appendChild(td);
    }
    return tr;
  }));
}

const num = (v, digits = 1) => (typeof v === 'number' ? v.toFixed(digits) : '');

function show(state) {
  const updated = document.getElementById('updated');
  const count = Number(updated.dataset.count) + 1;
  updated.dataset.count = String(count);
  updated.textContent = `updates: ${count}`;
  const stream = state.stream || {};
  document.getElementById('stream-info').textContent =
    `frame ${stream.seq} · ${stream.clients} viewer(s) · sent ${stream.frames_sent} · ` +
    `dropped for slow viewers ${stream.frames_dropped} · max ${stream.max_fps} fps`;
  fill('tracks', (state.tracks || []).map((t) =>
    [t.id, t.class, num(t.score, 2), t.box.map((v) => v.toFixed(0)).join(', ')]));
  fill('stages', (state.stages || []).map((s) =>
    [s.name, s.message, num(s.fps), s.latency_ms === null ? '' : num(s.latency_ms)]));
  fill('quality', Object.entries(state.quality || {}).map(([k, v]) => [k, v]));
  const anomaly = state.anomaly;
  const heat = document.getElementById('heatmap');
  if (anomaly) {
    document.getElementById('anomaly').textContent =
      `${anomaly.state} (score ${num(anomaly.score, 3)})`;
    if (anomaly.heatmap) {
      heat.hidden = false;
      heat.src = withToken('heatmap.jpg') + (token ? '&' : '?') + `t=${Date.now()}`;
    }
  }
  const mqtt = state.mqtt;
  if (mqtt) {
    document.getElementById('mqtt').textContent =
      `${mqtt.link} · ${mqtt.connected ? 'connected' : 'not connected'} · ${mqtt.broker}`;
  }
  const status = document.getElementById('status');
  status.textContent = state.level_name || 'ok';
  status.className = `badge ${LEVELS.includes(state.level_name) ? state.level_name : 'ok'}`;
}

async function poll() {
  try {
    const response = await fetch(withToken('api/state'), { headers, cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    show(await response.json());
  } catch (err) {
    const status = document.getElementById('status');
    status.textContent = `no connection (${err.message})`;
    status.className = 'badge error';
  }
  setTimeout(poll, 500);
}

document.getElementById('stream').src = withToken('stream.mjpg');
poll();
