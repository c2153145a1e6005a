// A family member or caregiver joining a patient's visit with the one-time link the patient sent. The token
// is in the link's fragment (never sent to a server by the browser): it is taken from the address bar at once,
// then exchanged, with the name typed here, for a guest session (`POST /api/v1/guest-sessions`). The guest then
// waits in the lobby until the nurse lets them in, answers the camera and recording question, and is in the
// call: the widget's own video screens (visit.js), without chat. Frames: docs/protocol.md, "Guests".
// At /consult/ the same page serves a staff interpreter or physician, signed in (cookie): it waits until a
// nurse asks them into a visit (`consult_asked`), they join or decline, and after the visit it waits again.
import { Channel } from '/widget/channel.js';
import { videoHandlers, wireVideo } from '/widget/visit.js';
import { guestHandlers } from '/widget/guests.js';
import { t, translatePage } from '/widget/i18n.js';

translatePage();
const STAFF = location.pathname.startsWith('/consult/');
document.title = t(STAFF ? 'consultTitle' : 'guestTitle');

const $ = (id) => document.getElementById(id);
/** The participant id this page is in a visit's list under: a guest's from their session, staff's from /me. */
let me = sessionStorage.getItem('examroom.guest-id');
const LINK_KEY = 'examroom.guest-link';
const SESSION_KEY = 'examroom.guest-session';
function setStatus(text) { $('status').textContent = text; }

// Out of the address bar (and so out of history and of anything that reads the URL) before anything else.
if (!STAFF && location.hash.length > 1) {
  sessionStorage.setItem(LINK_KEY, location.hash.slice(1));
  history.replaceState(null, '', location.pathname);
}

let channel = null;
let finished = false;

/** The visit is over for this guest: one message, the socket closed, the session forgotten. */
function finish(message) {
  finished = true;
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem('examroom.guest-id');
  setStatus(message);
  $('status').focus();
  channel?.close();
}

/** The visit's recording state, and this guest's own answer to the recording question (from `video_party`). */
const recording = { state: null, mine: null };

/** While the visit records, a guest who said no is told they are not in it (the badge speaks of the others). */
function markOwnRecording() {
  if (recording.state === 'recording' && recording.mine === false) $('video-recording').textContent = t('guestNotRecorded');
}

const handlers = {
  ...videoHandlers,
  video_started(f, ch) { recording.state = f.recording; videoHandlers.video_started(f, ch); markOwnRecording(); },
  recording_state(f) { recording.state = f.state; videoHandlers.recording_state(f); markOwnRecording(); },
  video_party(f) {
    guestHandlers.video_party(f, me);
    recording.mine = f.guests.find((g) => g.guest_id === me)?.recording_consent ?? null;
    markOwnRecording();
  },
  guest_lobby() { setStatus(t('guestLobby')); $('status').focus(); },
  consult_asked(f) {
    const from = f.from || t('consultANurse');
    $('consult-text').textContent = t(f.role === 'physician' ? 'consultAskedPhysician' : 'consultAskedInterpreter', { from });
    $('consult').dataset.visit = f.visit_id;
    $('consult').hidden = false;
    setStatus('');
    $('consult-join').focus();
  },
  video_proposed(f) {
    $('consult').hidden = true;
    if (STAFF) $('video-ask').textContent = t('consultAsk');
    videoHandlers.video_proposed(f);
  },
  video_ended(f) {
    videoHandlers.video_ended(f);
    // Said once, in the status (the widget's own notice would repeat it).
    $('notice').hidden = true;
    $('notice').textContent = '';
    // Staff stay on the page, signed in, for the next visit they are asked into.
    if (STAFF) { setStatus(t('consultEnded')); $('consult').hidden = true; $('status').focus(); return; }
    const key = { removed: 'endedRemoved', left: 'endedLeft', server_restart: 'endedMoved' }[f.reason] || 'endedGuest';
    finish(t(key));
  },
  error(f) { console.warn(`refused: ${f.code}`); },
};

/** Staff answer a nurse's request from the box `consult_asked` shows. */
function answerConsult(accept) {
  $('consult').hidden = true;
  channel.send({ type: 'consult_answer', visit_id: $('consult').dataset.visit, accept });
  if (!accept) { setStatus(t('consultDeclined')); $('status').focus(); }
}

async function staffPage() {
  const resp = await fetch('/api/v1/me', { credentials: 'same-origin' }).catch(() => null);
  const body = resp?.ok ? await resp.json() : null;
  $('guest-title').textContent = t('consultTitle');
  if (!body?.places.includes('consult')) { setStatus(t('consultSignIn')); return; }
  me = body.subject;
  $('consult-join').addEventListener('click', () => answerConsult(true));
  $('consult-decline').addEventListener('click', () => answerConsult(false));
  // The staff cookie, not a guest token; a reload keeps it.
  connect(null);
  setStatus(t('consultWaiting'));
}

function connect(session) {
  $('arrive').hidden = true;
  setStatus(t('connecting'));
  channel = new Channel(session, (f) => { if (!finished) handlers[f.type]?.(f, channel); }, (s) => { if (!finished) setStatus(s); },
    { reconnecting: t('reconnecting'), sessionEnded: t('endedGuest'), sessionKey: SESSION_KEY });
  wireVideo(channel, setStatus);
}

async function arrive(event) {
  event.preventDefault();
  const token = sessionStorage.getItem(LINK_KEY);
  const name = $('guest-name').value.trim();
  const resp = await fetch('/api/v1/guest-sessions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token, name }),
  }).catch(() => null);
  if (!resp) { setStatus(t('reconnecting')); return; }
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 201) {
    sessionStorage.removeItem(LINK_KEY);
    sessionStorage.setItem(SESSION_KEY, body.session_token);
    sessionStorage.setItem('examroom.guest-id', body.guest_id);
    me = body.guest_id;
    connect(body.session_token);
    return;
  }
  const code = body.error?.code;
  const key = { invalid_name: 'guestNameInvalid', visit_full: 'guestFull', link_invalid: 'guestLinkInvalid' }[code];
  // Only a link the server refused is given up; anything else (busy, a moment's outage) may be tried again.
  setStatus(t(key || 'guestTryAgain'));
  if (code === 'link_invalid') { sessionStorage.removeItem(LINK_KEY); $('arrive').hidden = true; $('status').focus(); } else $('guest-name').focus();
}

const saved = sessionStorage.getItem(SESSION_KEY);
if (STAFF) staffPage();
else if (saved) connect(saved);
else if (sessionStorage.getItem(LINK_KEY)) {
  $('arrive').hidden = false;
  $('arrive').addEventListener('submit', arrive);
  $('guest-name').focus();
} else setStatus(t('guestNoLink'));
