// Scheduled reports in the compliance console: what the schedules produced without anyone asking, newest first,
// each downloadable as its signed file and checked by the broker on request (the file's digest, its signature
// under the audit-signing key, and the audit trail head it names). The download is audited; the list and the
// check read no patient data.

const $ = (id) => document.getElementById(id);
const when = (t) => (t ? new Date(t).toLocaleString() : '');
const date = (t, zone) => new Date(t).toLocaleDateString(undefined, { timeZone: zone || 'UTC' });
const EVERY = { daily: 'every day', weekly: 'every week' };
const KIND = { access: 'Access audit', consent: 'Consent verification', retention: 'Retention compliance', exposure: 'Staff ePHI exposure' };

function cell(tr, content) {
  const td = document.createElement('td');
  td.append(content);
  tr.append(td);
  return td;
}

/** "12/2/2026 (UTC)" for a day; "11/30/2026 – 12/6/2026 (America/Chicago)" for a week (`to` is exclusive), in
 *  the zone whose midnight starts the schedule's periods. */
function period(r) {
  const from = Date.parse(r.from);
  const last = Date.parse(r.to) - 1;
  const zone = r.time_zone || 'UTC';
  const days = Math.round((Date.parse(r.to) - from) / 86400000);
  return `${days <= 1 ? date(from, zone) : `${date(from, zone)} – ${date(last, zone)}`} (${zone})`;
}

async function verify(r, status, button) {
  button.disabled = true;
  status.textContent = 'Checking…';
  try {
    const resp = await fetch(`/api/v1/reports/scheduled/${encodeURIComponent(r.id)}/verify`);
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const { check } = await resp.json();
    status.textContent = check.valid
      ? `Valid: signed by key ${check.verified.key_id}; audit trail head ${check.verified.chain_head.seq} is in the trail.`
      : `Refused: ${check.problem}`;
    status.className = check.valid ? 'valid' : 'refused';
  } catch (e) {
    status.textContent = `Could not be checked: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

export async function scheduled() {
  try {
    const resp = await fetch('/api/v1/reports/scheduled');
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const { schedules, reports } = await resp.json();
    $('schedules').textContent = schedules.length
      ? `Schedules: ${schedules.map((s) => `${KIND[s.report] || s.report} ${EVERY[s.every] || s.every}${s.time_zone ? ` (${s.time_zone})` : ''}`).join('; ')}.`
      : 'No report is scheduled (reports.schedules in the configuration).';
    $('scheduled-rows').replaceChildren(...reports.map((r) => {
      const tr = document.createElement('tr');
      cell(tr, KIND[r.report] || r.report);
      cell(tr, period(r));
      cell(tr, when(r.executed_at));
      cell(tr, String(r.head_seq));
      const link = document.createElement('a');
      link.href = `/api/v1/reports/scheduled/${encodeURIComponent(r.id)}`;
      link.textContent = 'Download';
      link.setAttribute('aria-label', `Download the signed file of ${KIND[r.report] || r.report}, ${period(r)}`);
      link.download = `${r.id}.json`;
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = 'Verify';
      button.setAttribute('aria-label', `Verify ${KIND[r.report] || r.report}, ${period(r)}`);
      const status = document.createElement('span');
      status.setAttribute('role', 'status');
      button.addEventListener('click', () => verify(r, status, button));
      const actions = cell(tr, link);
      actions.append(' ', button);
      cell(tr, status);
      return tr;
    }));
    $('scheduled-table').hidden = reports.length === 0;
    $('scheduled-status').textContent = reports.length ? `${reports.length} stored report(s).` : 'None stored yet: each arrives when its period has ended.';
  } catch (e) {
    $('scheduled-status').textContent = `Scheduled reports could not be read: ${e.message}`;
  }
}
