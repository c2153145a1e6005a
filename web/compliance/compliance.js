// The compliance console: recordings listed, filtered and played (streamed with range requests, so seeking
// works), pauses and gaps drawn on the timeline, legal hold set and released, each recording's access
// history. Every request carries the reason the officer gave; the broker audits each one. Compliance reports
// run over a date range, shown as a table with the audit trail head they read and a CSV of the same report.
const $ = (id) => document.getElementById(id);
let reason = '';
let recordings = [];
let current = null;

const q = () => `reason=${encodeURIComponent(reason)}`;
const when = (t) => (t ? new Date(t).toLocaleString() : '');

async function api(path, options) {
  const resp = await fetch(path, options);
  if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).error?.message || `HTTP ${resp.status}`);
  return resp.json();
}

function cell(tr, text) {
  const td = document.createElement('td');
  td.textContent = text;
  tr.appendChild(td);
  return td;
}

function render() {
  const needle = $('filter').value.trim().toLowerCase();
  const rows = recordings
    .filter((r) => !needle || [r.queue, r.consent, r.started_at].some((v) => String(v).toLowerCase().includes(needle)))
    .map((r) => {
      const tr = document.createElement('tr');
      cell(tr, when(r.started_at));
      cell(tr, r.queue);
      cell(tr, r.consent);
      cell(tr, r.manifest ? r.manifest.pauses.length : 0);
      cell(tr, when(r.retain_until));
      cell(tr, r.legal_hold ? 'yes' : 'no');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = r.state === 'stored' ? 'Open' : r.state;
      b.disabled = r.state !== 'stored';
      b.setAttribute('aria-label', `Open recording of ${when(r.started_at)}`);
      b.addEventListener('click', () => open(r.id));
      cell(tr, '').appendChild(b);
      return tr;
    });
  $('recordings').replaceChildren(...rows);
}

function drawTimeline(manifest) {
  const start = manifest.started_ms;
  const span = Math.max(1, (manifest.ended_ms || start) - start);
  const parts = [];
  const add = (cls, a, b, label) => {
    const d = document.createElement('div');
    d.className = cls;
    d.style.left = `${((a - start) / span) * 100}%`;
    d.style.width = `${Math.max(0.5, ((b - a) / span) * 100)}%`;
    d.title = label;
    parts.push(d);
  };
  const list = [];
  for (const p of manifest.pauses) {
    add('pause', p.start_ms, p.end_ms || manifest.ended_ms, `paused: ${p.reason}`);
    const li = document.createElement('li');
    li.textContent = `Paused ${((p.start_ms - start) / 1000).toFixed(1)} s to ${(((p.end_ms || manifest.ended_ms) - start) / 1000).toFixed(1)} s: ${p.reason}`;
    list.push(li);
  }
  const gapWhy = {
    lost: 'media lost (server restart)',
    failover: 'media lost while the visit moved off a failed server',
    handover: 'the visit moving to another server',
  };
  for (const g of manifest.gaps) {
    const why = gapWhy[g.reason] || 'media lost';
    add('gap', g.start_ms, g.end_ms, why);
    const li = document.createElement('li');
    li.textContent = `Gap ${((g.start_ms - start) / 1000).toFixed(1)} s to ${((g.end_ms - start) / 1000).toFixed(1)} s: ${why}`;
    list.push(li);
  }
  for (const h of manifest.handovers || []) {
    const li = document.createElement('li');
    const why = h.reason === 'drain' ? 'planned server restart' : 'server failure';
    li.textContent = `Moved to another server at ${((h.at_ms - start) / 1000).toFixed(1)} s (${why}); the recording continues`;
    list.push(li);
  }
  $('timeline').replaceChildren(...parts);
  $('pauses').replaceChildren(...list);
}

async function history(id) {
  const h = await api(`/api/v1/recordings/${id}/access?${q()}`);
  $('history').replaceChildren(...h.events.map((e) => {
    const tr = document.createElement('tr');
    // Who: the name (staff, or the broker's own job) with the id under it for the record.
    const who = e.name ? `${e.name} — ${e.actor}` : e.actor;
    for (const v of [when(e.at), who, e.role, e.action, e.outcome, e.reason]) cell(tr, v);
    return tr;
  }));
}

/** The nurse's disposition and notes for the chat this visit came from (a read of its own, audited). */
async function wrapUp(id) {
  const { wrap_up: w } = await api(`/api/v1/recordings/${id}/wrap-up?${q()}`);
  const rows = w ? [['Disposition', w.disposition], ['Notes', w.notes || '(none)'], ['By', `${w.nurse_name ?? w.nurse}, ${when(w.at)}`]]
    : [['Disposition', 'No wrap-up was recorded for this chat.']];
  $('wrap-up').replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
}

async function open(id) {
  current = await api(`/api/v1/recordings/${id}?${q()}`);
  $('detail').hidden = false;
  $('detail-title').textContent = `Recording of ${when(current.started_at)} (${current.queue})`;
  $('player').src = `/api/v1/recordings/${id}/stream?${q()}`;
  drawTimeline(current.manifest);
  $('hold').textContent = current.legal_hold ? 'Release legal hold' : 'Set legal hold';
  // Another recording's wrap-up and history must never stay under this title.
  $('wrap-up').replaceChildren();
  $('history').replaceChildren();
  await wrapUp(id).catch((e) => { $('wrap-up').textContent = `The wrap-up could not be read: ${e.message}`; });
  await history(id).catch(() => {});
}

$('hold').addEventListener('click', async () => {
  const hold = !current.legal_hold;
  await api(`/api/v1/recordings/${current.id}/legal-hold`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ hold, reason }),
  });
  current.legal_hold = hold;
  $('hold').textContent = hold ? 'Release legal hold' : 'Set legal hold';
  recordings = (await api(`/api/v1/recordings?${q()}`)).recordings;
  render();
  await history(current.id);
});

$('filter').addEventListener('input', render);

$('reason-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  reason = $('reason').value.trim();
  try {
    recordings = (await api(`/api/v1/recordings?${q()}`)).recordings;
    $('list-section').hidden = false;
    $('status').textContent = `${recordings.length} recording(s).`;
    render();
  } catch (err) {
    $('status').textContent = err.message;
  }
});

// Reports: the browser's own time zone is passed for display only; the range is UTC dates.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
$('report-from').value = day(-30);
$('report-to').value = day(1);

function show(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

$('report-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = $('report-kind').value;
  const params = new URLSearchParams({ from: $('report-from').value, to: $('report-to').value, tz: zone });
  try {
    const r = await api(`/api/v1/reports/${kind}?${params}`);
    params.set('head_seq', r.chain_head.seq);
    params.set('format', 'csv');
    $('report-csv').href = `/api/v1/reports/${kind}?${params}`;
    $('report-csv').setAttribute('download', `examroom-${kind}-${r.chain_head.seq}.csv`);
    $('report-head').textContent = `Audit trail head: event ${r.chain_head.seq}, ${r.chain_head.hash}`;
    $('report-summary').replaceChildren(...Object.entries(r.summary).flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k.replaceAll('_', ' ');
      const dd = document.createElement('dd');
      dd.textContent = show(v);
      return [dt, dd];
    }));
    const columns = r.columns;
    $('report-columns').replaceChildren(...columns.map((c) => {
      const th = document.createElement('th');
      th.scope = 'col';
      th.textContent = c.replaceAll('_', ' ');
      return th;
    }));
    $('report-rows').replaceChildren(...r.rows.map((row) => {
      const tr = document.createElement('tr');
      for (const c of columns) cell(tr, show(row[c]));
      return tr;
    }));
    $('report-result').hidden = false;
    $('report-status').textContent = `${r.rows.length} row(s).`;
  } catch (err) {
    $('report-status').textContent = err.message;
  }
});

(async () => {
  const me = await fetch('/api/v1/me');
  if (!me.ok) { location.assign('/auth/login?return_to=/compliance/'); return; }
  const who = await me.json();
  $('who').textContent = `Signed in as ${who.display_name ?? 'staff'} (${who.roles.join(', ')})`;
})();
