// The supervisor's live board: queues (waiting, emergency flags, longest wait, staffing, abandonment) and
// nurses (presence, load, skills), refreshed every 5 seconds from /api/v1/queues/stats. No patient data.
const $ = (id) => document.getElementById(id);

function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
}

function row(cells, className) {
  const tr = document.createElement('tr');
  if (className) tr.className = className;
  for (const [text, cls] of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  return tr;
}

const PRESENCE = { ready: 'Ready', busy: 'Busy (at her chat limit)', wrap_up: 'Wrap-up', away: 'Away' };

async function refresh() {
  const resp = await fetch('/api/v1/queues/stats');
  if (!resp.ok) {
    $('updated').textContent = resp.status === 403 ? 'This board is for supervisors.' : 'The board could not be updated; retrying.';
    return;
  }
  const board = await resp.json();
  $('queues').replaceChildren(...board.queues.map((q) => row([
    [q.queue], [q.waiting, 'number'], [q.emergencies, 'number'], [duration(q.longest_wait_seconds), 'number'],
    [q.staffed_nurses, 'number'], [q.ready_nurses, 'number'], [duration(q.average_handle_seconds), 'number'],
    [`${q.abandoned.under_1_minute} / ${q.abandoned.from_1_to_5_minutes} / ${q.abandoned.over_5_minutes}`, 'number'],
  ], q.emergencies > 0 ? 'urgent' : '')));
  $('nurses').replaceChildren(...board.nurses.map((n) => row([
    [n.name ?? n.nurse], [PRESENCE[n.presence] ?? n.presence, `presence-${n.presence}`], [n.chats, 'number'],
    [n.offered ? 'Yes' : 'No'], [n.connected ? 'Connected' : 'Disconnected'], [n.skills.join(', ') || '—'],
  ])));
  $('no-nurses').hidden = board.nurses.length > 0;
  $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

async function main() {
  const me = await fetch('/api/v1/me');
  if (!me.ok) { location.assign('/auth/login?return_to=/supervisor/'); return; }
  const who = await me.json();
  $('who').textContent = `Signed in as ${who.display_name ?? 'staff'} (${who.roles.join(', ')})`;
  await refresh();
  setInterval(refresh, 5000);
}

main();
