// The compliance console: recordings listed, filtered and opened: every participant played side by side
// (player.js), pauses and gaps on the timeline and in words, legal hold set and released, each recording's
// access history. Every request carries the reason the officer gave; the broker audits each one. Compliance reports
// run over a date range, shown as a table with the audit trail head they read and a CSV of the same report;
// scheduled reports are listed and checked (evidence.js).
import { GAP_WHY, mount } from './player.js';
import { scheduled } from './evidence.js';

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

/** "4 min 05 s" for a recording's length. */
const length = (s) => (s === null || s === undefined ? 'in progress' : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`);

/** Who took part, counted by role: "patient, nurse, 2 guests". */
function people(roles) {
  const order = ['patient', 'nurse', 'interpreter', 'physician', 'guest'];
  const counts = new Map(order.map((r) => [r, 0]));
  for (const r of roles) counts.set(r, (counts.get(r) || 0) + 1);
  for (const [r, n] of counts) if (!n) counts.delete(r);
  return [...counts].map(([r, n]) => (n > 1 ? `${n} ${r}s` : r)).join(', ');
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
    .filter((r) => !needle || [r.reference, r.queue, r.consent, r.started_at, r.visit_id, ...r.nurses].some((v) => String(v).toLowerCase().includes(needle)))
    .map((r) => {
      const tr = document.createElement('tr');
      // The reference to quote, and the visit it records (the id other systems know it by).
      const ref = cell(tr, r.reference);
      const visit = document.createElement('small');
      visit.className = 'visit-id';
      visit.textContent = r.visit_id;
      ref.append(document.createElement('br'), visit);
      cell(tr, when(r.started_at));
      cell(tr, length(r.duration_s));
      cell(tr, r.queue);
      cell(tr, r.nurses.join(', then '));
      cell(tr, people(r.participants));
      cell(tr, r.consent);
      cell(tr, r.manifest ? r.manifest.pauses.length : 0);
      cell(tr, when(r.retain_until));
      cell(tr, r.legal_hold ? 'yes' : 'no');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = r.state === 'stored' ? 'Open' : r.state;
      b.disabled = r.state !== 'stored';
      b.setAttribute('aria-label', `Open recording ${r.reference} of ${when(r.started_at)}`);
      b.addEventListener('click', () => open(r.id));
      cell(tr, '').appendChild(b);
      return tr;
    });
  $('recordings').replaceChildren(...rows);
}

/** The pauses, gaps and moves in words, beside the timeline's bands. */
function listEvents(manifest) {
  const start = manifest.started_ms;
  const at = (ms) => ((ms - start) / 1000).toFixed(1);
  const lines = [
    ...manifest.pauses.map((p) => `Paused ${at(p.start_ms)} s to ${at(p.end_ms || manifest.ended_ms)} s: ${p.reason}`),
    ...manifest.gaps.map((g) => `Gap ${at(g.start_ms)} s to ${at(g.end_ms)} s: ${GAP_WHY[g.reason] || 'media lost'}`),
    ...(manifest.handovers || []).map((h) => `Moved to another server at ${at(h.at_ms)} s (${h.reason === 'drain' ? 'planned server restart' : 'server failure'}); the recording continues`),
  ];
  $('pauses').replaceChildren(...lines.map((text) => {
    const li = document.createElement('li');
    li.textContent = text;
    return li;
  }));
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
  $('detail-title').textContent = `Recording ${current.reference} of ${when(current.started_at)} (${current.queue})`;
  const facts = [
    ['Reference', current.reference], ['Recording id', current.id], ['Visit id', current.visit_id],
    ['Length', length(current.duration_s)], ['Nurse', current.nurses.join(', then ') || '—'],
    ['Who took part', people(current.participants)], ['Consent', current.consent],
  ];
  $('facts').replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  mount(current, (track, kind = 'stream') => `/api/v1/recordings/${id}/${kind}?${q()}${track === null ? '' : `&participant=${track}`}`);
  listEvents(current.manifest);
  $('hold').textContent = current.legal_hold ? 'Release legal hold' : 'Set legal hold';
  // Another recording's wrap-up, transcript and history must never stay under this title.
  $('wrap-up').replaceChildren();
  $('transcript').replaceChildren();
  $('transcript-status').textContent = '';
  $('read-transcript').hidden = false;
  $('history').replaceChildren();
  await wrapUp(id).catch((e) => { $('wrap-up').textContent = `The wrap-up could not be read: ${e.message}`; });
  await history(id).catch(() => {});
}

const SENDER = { patient: 'Patient', nurse: 'Nurse', system: 'examroom', guest: 'Guest' };

/** The chat's messages, read on request (an audited access of its own). */
$('read-transcript').addEventListener('click', async () => {
  const id = current.id;
  try {
    const { messages } = await api(`/api/v1/recordings/${id}/transcript?${q()}`);
    if (current.id !== id) return;
    $('read-transcript').hidden = true;
    $('transcript-status').textContent = messages ? `${messages.length} message(s).` : 'The chat is no longer kept.';
    $('transcript').replaceChildren(...(messages || []).map((m) => {
      const li = document.createElement('li');
      const head = document.createElement('span');
      head.className = 'said-by';
      head.textContent = `${SENDER[m.sender_role] || m.sender_role}, ${new Date(m.at).toLocaleTimeString()}`;
      const body = document.createElement('p');
      body.textContent = m.body;
      li.append(head, body);
      return li;
    }));
    await history(id);
  } catch (e) {
    $('transcript-status').textContent = `The transcript could not be read: ${e.message}`;
  }
});

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

// The accounting report is for one patient: ask whose only then.
$('report-kind').addEventListener('change', () => {
  const one = $('report-kind').value === 'accounting';
  $('report-patient-field').hidden = !one;
  $('report-patient').required = one;
});

$('report-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const kind = $('report-kind').value;
  const params = new URLSearchParams({ from: $('report-from').value, to: $('report-to').value, tz: zone });
  if (kind === 'accounting') params.set('patient', $('report-patient').value.trim());
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

const ALERT = { break_glass: 'Break-glass access', exposure: 'Exposure over the threshold', denied_attempts: 'Repeated refused attempts' };

/** The broker's alerts, checked again every minute while the console is open. */
async function alerts() {
  try {
    const { alerts: list } = await api('/api/v1/alerts');
    $('alerts-status').textContent = list.length ? `${list.length} alert(s).` : 'No alerts in the last 7 days.';
    $('alerts').replaceChildren(...list.map((a) => {
      const li = document.createElement('li');
      const title = document.createElement('strong');
      title.textContent = `${ALERT[a.kind] || a.kind}, ${when(a.at)}: `;
      li.append(title, a.detail);
      return li;
    }));
  } catch (e) {
    $('alerts-status').textContent = `Alerts could not be read: ${e.message}`;
  }
}

(async () => {
  const me = await fetch('/api/v1/me');
  if (!me.ok) { location.assign('/auth/login?return_to=/compliance/'); return; }
  const who = await me.json();
  $('who').textContent = `Signed in as ${who.display_name ?? 'staff'} (${who.roles.join(', ')})`;
  await alerts();
  await scheduled();
  // Each read of the alerts is an audited read of the audit log: once a minute is enough for a desk tool.
  setInterval(alerts, 60000);
})();
