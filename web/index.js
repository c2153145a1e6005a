// Start page: who is signed in, and the places they may work in as the access policy decides (`places` of
// /api/v1/me: the workspace, the supervisor board, the recordings console, the system status).
const $ = (id) => document.getElementById(id);

const PLACES = {
  workspace: ['/workspace/', 'Nurse workspace', 'Go ready, take chats from the waiting room, start video.'],
  consult: ['/consult/', 'Visits you are asked to join', 'As an interpreter or physician: join the video visits nurses ask you into.'],
  supervisor: ['/supervisor/', 'Supervisor board', 'Queues, waits, emergency flags and nurses, live.'],
  compliance: ['/compliance/', 'Recordings and audit', 'Review recordings with a stated reason; legal holds; reports.'],
  status: ['/status/', 'System status', 'How the broker is running: version, database, workers, nodes.'],
};

function place([href, title, text]) {
  const li = document.createElement('li');
  const a = document.createElement('a');
  a.href = href;
  a.textContent = title;
  const p = document.createElement('p');
  p.textContent = text;
  li.append(a, p);
  return li;
}

async function refresh() {
  const resp = await fetch('/api/v1/me', { credentials: 'same-origin' });
  if (resp.ok) {
    const body = await resp.json();
    $('me').textContent = `Signed in as ${body.display_name ?? 'staff member'}.`;
    const places = body.places.map((p) => PLACES[p]).filter(Boolean);
    $('places').replaceChildren(...places.map(place));
    $('places').hidden = places.length === 0;
    if (!places.length) $('me').textContent += ' Your account has no examroom role: ask your administrator.';
    $('sign-in').hidden = true;
    $('sign-out').hidden = false;
  } else {
    $('me').textContent = 'Not signed in.';
    $('places').hidden = true;
    $('sign-in').hidden = false;
    $('sign-out').hidden = true;
  }
}

$('sign-out').addEventListener('click', async () => {
  await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
  await refresh();
  $('me').focus();
});

// The demo portal exists only under `examroom dev`.
fetch('/portal/', { method: 'HEAD' }).then((r) => { $('demo-portal').hidden = !r.ok; }).catch(() => {});
refresh();
