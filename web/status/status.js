// The IT helpdesk's page: /api/v1/system/status as a person reads it (version, database, uptime, audit
// events, workers, cluster nodes), refreshed every 10 seconds. No patient data.
const $ = (id) => document.getElementById(id);

function cells(values) {
  const tr = document.createElement('tr');
  for (const v of values) {
    const td = document.createElement('td');
    td.textContent = v;
    tr.appendChild(td);
  }
  return tr;
}

function uptime(s) {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

async function refresh() {
  const resp = await fetch('/api/v1/system/status');
  if (!resp.ok) {
    $('updated').textContent = resp.status === 403 ? 'This page is for operators and IT support.' : 'Status could not be read; retrying.';
    return;
  }
  const s = await resp.json();
  const summary = [['Version', s.version], ['Database', s.database], ['Uptime', uptime(s.uptime_seconds)],
    ['This node', s.cluster.node], ['Audit events recorded', s.audit_events]];
  $('summary').replaceChildren(...summary.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  const STATE = { running: 'Running', stopped: 'Finished (its work is done, or not needed on this node)', failed: 'Failed (see the broker log)', aborted: 'Aborted at shutdown' };
  $('workers').replaceChildren(...Object.entries(s.workers).map(([name, state]) => cells([name, STATE[state] ?? state])));
  $('nodes').replaceChildren(...s.cluster.nodes.map((n) => cells([n.node, n.sockets, (n.media_addresses || []).join(', ')])));
  $('single').hidden = s.cluster.nodes.length > 0;
  $('nodes').closest('.scroll').hidden = s.cluster.nodes.length === 0;
  $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

async function main() {
  const me = await fetch('/api/v1/me');
  if (!me.ok) { location.assign('/auth/login?return_to=/status/'); return; }
  const who = await me.json();
  $('who').textContent = `Signed in as ${who.display_name ?? 'staff'} (${who.roles.join(', ')})`;
  if (!who.places.includes('status')) {
    $('status-page').hidden = true;
    $('not-yours').hidden = false;
    return;
  }
  await refresh();
  setInterval(refresh, 10000);
}

main();
