// The supervisor's live board: queues (waiting, emergency flags, longest wait, staffing, abandonment), nurses
// (presence, load, skills) and the chats in progress, refreshed every 5 seconds (/api/v1/queues/stats,
// /api/v1/conversations: no patient data). A chat the policy lets her read opens read-only below, refreshed
// while open; each read is audited by the broker.
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
  const live = await fetch('/api/v1/conversations');
  if (!live.ok) {
    $('updated').textContent = 'The chats in progress could not be updated; retrying.';
    return;
  }
  showChats((await live.json()).chats);
  $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}.`;
}

/** The chats in progress, row by row in place: a "Read" button with focus stays where it is. */
function showChats(chats) {
  const rows = new Map([...$('chats').children].map((tr) => [tr.dataset.conversation, tr]));
  const keep = new Set();
  for (const c of chats) {
    const fresh = chatRow(c);
    const old = rows.get(c.conversation_id);
    keep.add(c.conversation_id);
    if (!old) { $('chats').appendChild(fresh); continue; }
    // Only the cells that changed are replaced; the button's cell is kept.
    old.className = fresh.className;
    [...fresh.children].slice(0, -1).forEach((td, i) => {
      if (old.children[i].textContent !== td.textContent) old.children[i].replaceWith(td);
    });
  }
  for (const [id, tr] of rows) if (!keep.has(id)) tr.remove();
  $('no-chats').hidden = chats.length > 0;
}

const STATE = { waiting: 'Waiting', assigned: 'With a nurse' };

function chatRow(c) {
  const tr = row([
    [c.reference], [c.queue], [STATE[c.state] ?? c.state], [c.nurse ?? '—'], [duration(c.seconds), 'number'],
    [c.emergency ? '⚠ Flagged' : 'No'],
  ], c.emergency ? 'urgent' : '');
  const td = document.createElement('td');
  if (c.readable) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Read';
    b.setAttribute('aria-label', `Read chat ${c.reference}`);
    b.addEventListener('click', () => openChat(c));
    td.appendChild(b);
  } else {
    td.textContent = 'Not yours to read';
  }
  tr.appendChild(td);
  tr.dataset.conversation = c.conversation_id;
  return tr;
}

// The chat open below the tables: its id, the last message shown, and the refresh timer.
const reading = { id: null, last: 0, timer: null, busy: false };
const WHO = { patient: 'Patient', nurse: 'Nurse', system: 'Notice' };

async function readMore() {
  const id = reading.id;
  if (!id || reading.busy === id) return;
  reading.busy = id;
  try {
    await readPage(id);
  } finally {
    if (reading.busy === id) reading.busy = false;
  }
}

/** Says `text` in the status line only when it changes (a screen reader hears each change, not each poll). */
function readingState(text) {
  if ($('reading-state').textContent !== text) $('reading-state').textContent = text;
}

async function readPage(id) {
  const resp = await fetch(`/api/v1/conversations/${encodeURIComponent(id)}/messages?after_seq=${reading.last}`);
  const page = resp.ok ? await resp.json() : null;
  // Another chat was opened (or this one closed) while this answer was on its way: it is not shown.
  if (id !== reading.id) return;
  if (resp.status === 403) {
    clearInterval(reading.timer);
    readingState('This chat has ended or is no longer yours to read. What was shown stays until you close it.');
    return;
  }
  if (!page) {
    readingState('The transcript could not be read; retrying.');
    return;
  }
  for (const m of page.messages) {
    const li = document.createElement('li');
    li.className = m.sender_role;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = `${WHO[m.sender_role] ?? m.sender_role}: `;
    li.append(who, document.createTextNode(m.body));
    $('reading-transcript').appendChild(li);
  }
  reading.last = page.last_seq;
  // New messages are announced from here on, not the whole transcript when it opens.
  $('reading-transcript').setAttribute('aria-live', 'polite');
  readingState(page.state === 'assigned' ? 'With a nurse; new messages appear as they are written.' : 'Waiting for a nurse.');
  if (page.more) await readPage(id);
}

function openChat(c) {
  clearInterval(reading.timer);
  Object.assign(reading, { id: c.conversation_id, last: 0, busy: false });
  $('reading-transcript').replaceChildren();
  $('reading-transcript').setAttribute('aria-live', 'off');
  $('reading-state').textContent = '';
  $('reading-title').textContent = `Chat ${c.reference} (${c.queue}), read-only`;
  $('reading').hidden = false;
  $('reading-title').focus();
  readMore();
  reading.timer = setInterval(readMore, 5000);
}

$('reading-close').addEventListener('click', () => {
  clearInterval(reading.timer);
  reading.id = null;
  $('reading').hidden = true;
  $('chats-title').focus();
});

async function main() {
  const me = await fetch('/api/v1/me');
  if (!me.ok) { location.assign('/auth/login?return_to=/supervisor/'); return; }
  const who = await me.json();
  $('who').textContent = `Signed in as ${who.display_name ?? 'staff'} (${who.roles.join(', ')})`;
  if (!who.places.includes('supervisor')) {
    $('board').hidden = true;
    $('not-yours').hidden = false;
    return;
  }
  await refresh();
  setInterval(refresh, 5000);
}

main();
