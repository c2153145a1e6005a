// The patient side of the chat, inside the broker-served iframe. It exchanges the portal's ID token for an
// examroom session, then speaks the WebSocket protocol (docs/protocol.md): waiting room updates, chat with
// acknowledgements, and resends with the same idempotency key after a reconnect so nothing is lost or doubled.
import { Channel, SESSION_KEY } from '/widget/channel.js';
import { currentVisit, videoHandlers, wireVideo } from '/widget/visit.js';
import { guestHandlers, wireInvite } from '/widget/guests.js';
import { precallHandlers, wirePrecall } from '/widget/precall.js';
import { LANG, t, translatePage, when } from '/widget/i18n.js';

translatePage();

const $ = (id) => document.getElementById(id);
// The portal's queue, or none: the broker then picks the queue of the widget's language.
const queue = new URLSearchParams(location.search).get('queue');
const state = { conversation: null, lastSeq: 0, outbox: new Map(), seen: new Set() };
function setStatus(text) { $('status').textContent = text; }

function minutes(seconds) {
  if (seconds === null || seconds === undefined) return t('findingNurse');
  if (seconds <= 60) return t('aboutAMinute');
  return t('aboutMinutes', { n: Math.round(seconds / 60) });
}

function addMessage({ seq, sender_role, body, pending, key }) {
  if (!key && seq && state.seen.has(seq)) return;
  if (seq) state.seen.add(seq);
  const li = key ? document.querySelector(`li[data-key="${CSS.escape(key)}"]`) || document.createElement('li') : document.createElement('li');
  li.textContent = `${sender_role === 'patient' ? t('you') : t('nurse')}: ${body}`;
  li.className = (sender_role === 'patient' ? 'mine' : '') + (pending ? ' pending' : '');
  if (key) li.dataset.key = key;
  if (seq) li.dataset.seq = seq;
  if (!li.parentNode) $('transcript').appendChild(li);
  $('transcript').scrollTop = $('transcript').scrollHeight;
}

/** Sends a chat message (acknowledged, resent after a reconnect with the same key). */
function send(ch, body) {
  const key = crypto.randomUUID();
  state.outbox.set(key, body);
  addMessage({ sender_role: 'patient', body, pending: true, key });
  ch.send({ type: 'send', conversation_id: state.conversation, idempotency_key: key, body });
}

/** Back to the start: a new chat can begin (the ended one stays on the server, not on this screen). */
function resetChat() {
  Object.assign(state, { conversation: null, lastSeq: 0, starting: false });
  state.outbox.clear();
  state.seen.clear();
  $('transcript').replaceChildren();
  for (const id of ['ended-actions', 'reference', 'emergency', 'notice', 'music']) $(id).hidden = true;
  $('location').hidden = false;
  $('location-text').value = '';
  $('location-sent').hidden = true;
  $('reason').value = '';
  $('start').hidden = false;
  $('precall-open').hidden = false;
  setStatus(t('signedIn'));
  $('reason').focus();
}

/** The transcript as a text file the patient keeps (made here, from what is on screen; nothing is sent). */
function saveCopy() {
  const lines = [...$('transcript').children].map((li) => li.textContent);
  const text = [$('reference').textContent, t('saved', { when: when(new Date()) }), '', ...lines, ''].join('\n');
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  a.download = `chat-${state.reference || 'copy'}.txt`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function showConversation(c) {
  state.conversation = c.conversation_id;
  $('start').hidden = true;
  $('reference').hidden = false;
  $('reference').textContent = t('reference', { ref: c.reference });
  state.reference = c.reference;
  $('compose').hidden = !(c.chat_while_waiting || c.state === 'assigned');
  // After "Start a chat" the button is gone: focus goes where the patient writes, or to the status.
  if (state.starting) {
    state.starting = false;
    // An emergency notice (from the reason) keeps focus on its question of where the patient is.
    const asking = !$('emergency').hidden && $('location-sent').hidden;
    if (!asking) { if ($('compose').hidden) $('status').focus(); else $('message').focus(); }
  }
  if (c.state === 'waiting' && c.hold_music) {
    $('hold-music').src = c.hold_music;
    $('music').hidden = false;
  }
}

function stopMusic() {
  $('hold-music').pause();
  $('music').hidden = true;
}

const handlers = {
  ...videoHandlers,
  ...guestHandlers,
  ...precallHandlers,
  welcome(f, ch) {
    const open = f.conversations.find((c) => c.queue === queue) || f.conversations[0];
    if (open) {
      showConversation(open);
      setStatus(open.state === 'assigned' ? t('chatting') : t('inLine'));
      ch.send({ type: 'sync', conversation_id: open.conversation_id, after_seq: state.lastSeq });
    } else if (state.conversation) {
      // Our chat is no longer open: it ended while this page was away (the waiting room gave the place up).
      state.conversation = null;
      stopMusic();
      $('compose').hidden = true;
      setStatus(t('endedAway'));
      $('start').hidden = false;
    } else {
      setStatus(t('signedIn'));
      $('start').hidden = false;
    }
  },
  conversation(f) { showConversation(f.conversation); },
  waiting(f) { setStatus(t('position', { n: f.position, eta: minutes(f.eta_seconds) })); },
  reassurance(f) { $('notice').hidden = false; $('notice').textContent = f.text; },
  // The broker's wording is English; the widget says the same in its own language.
  requeued(f) {
    $('notice').hidden = false;
    $('notice').textContent = t(f.reason === 'transferred' ? 'transferred' : 'requeued');
    setStatus(t('waitingNext'));
  },
  max_wait() { $('notice').hidden = false; $('notice').textContent = t('maxWait'); $('callback').hidden = false; },
  emergency(f) {
    // The notice comes in the language the patient wrote in; the question of where they are goes with it.
    const first = $('emergency').hidden;
    $('emergency').hidden = false;
    $('emergency-text').textContent = f.text;
    $('emergency').lang = f.language;
    if (first && $('location-sent').hidden) $('location-text').focus();
  },
  idle_warning(f) { $('notice').hidden = false; $('notice').textContent = t('closesIn', { n: f.closes_in_seconds }); },
  assigned() { stopMusic(); $('compose').hidden = false; setStatus(t('nurseJoined')); },
  message(f) {
    state.lastSeq = Math.max(state.lastSeq, f.seq);
    // Our own message echoed before its ack: the ack will turn the pending line into the final one.
    if (f.sender_role === 'patient' && [...state.outbox.values()].includes(f.body)) { state.seen.add(f.seq); return; }
    addMessage(f);
  },
  synced(f, ch) {
    state.lastSeq = Math.max(state.lastSeq, f.last_seq);
    if (f.more) ch.send({ type: 'sync', conversation_id: f.conversation_id, after_seq: f.last_seq });
    // Anything not acknowledged before the connection dropped goes again, with the same key.
    for (const [key, body] of state.outbox) ch.send({ type: 'send', conversation_id: state.conversation, idempotency_key: key, body });
  },
  ack(f) {
    const body = state.outbox.get(f.idempotency_key);
    state.outbox.delete(f.idempotency_key);
    if (body !== undefined) addMessage({ seq: f.seq, sender_role: 'patient', body, key: f.idempotency_key });
  },
  ended(f) {
    stopMusic();
    $('compose').hidden = true;
    $('callback').hidden = true;
    $('notice').hidden = true;
    $('precall-open').hidden = true;
    // The notice to call for help stays; the question of where they are goes (no one reads an ended chat).
    $('location').hidden = true;
    setStatus(f.reason === 'callback_requested' ? t('callingBack') : f.reason === 'abandoned' ? t('abandoned') : t('ended'));
    // One clear end: what to do next, and a copy of what was said.
    $('ended-actions').hidden = false;
    $('save-copy').hidden = $('transcript').children.length === 0;
    $('new-chat').focus();
  },
  error(f) {
    // The video is moving to another server: it reconnects by itself (`video_started` at a higher `epoch`).
    if (f.code === 'video_moving') return;
    // Our offer crossed the server's: answered first, ours is sent again (`VideoCall.serverOffer`).
    if (f.code === 'server_offer_pending') return;
    $('notice').hidden = false; $('notice').textContent = t('error', { code: f.code });
  },
};

// Which patient an ID token names, as a digest (the subject itself may be a record number: never stored).
async function subjectTag(idToken) {
  const claims = JSON.parse(atob(idToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${claims.iss}|${claims.sub}`));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// A reload of the portal page resumes the same session (kept in this tab's sessionStorage, on the broker's
// origin), as long as it is still live and belongs to the patient now signed in; otherwise a new one is opened.
async function openSession(idToken) {
  const tag = await subjectTag(idToken).catch(() => null);
  const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  if (saved && tag && saved.tag === tag) {
    const me = await fetch('/api/v1/me', { headers: { authorization: `Bearer ${saved.session_token}` } });
    if (me.ok) return saved;
  }
  sessionStorage.removeItem(SESSION_KEY);
  const resp = await fetch('/api/v1/patient/sessions', { method: 'POST', headers: { authorization: `Bearer ${idToken}` } });
  if (resp.status === 429) throw new Error(t('tooManyAttempts'));
  if (!resp.ok) throw new Error(t('signInAgain'));
  const session = await resp.json();
  if (tag) sessionStorage.setItem(SESSION_KEY, JSON.stringify({ ...session, tag }));
  return session;
}

window.addEventListener('message', async (event) => {
  if (event.source !== window.parent || !event.data || event.data.type !== 'examroom:id_token') return;
  try {
    const session = await openSession(event.data.idToken);
    const ch = new Channel(session.session_token, (frame) => handlers[frame.type]?.(frame, ch), setStatus,
      { reconnecting: t('reconnecting'), sessionEnded: t('sessionEnded') });
    $('start').addEventListener('submit', (e) => {
      e.preventDefault();
      $('hold-music').play().catch(() => {});
      state.starting = true;
      const reason = $('reason').value.trim();
      ch.send({ type: 'start', ...(queue ? { queue } : {}), language: LANG, idempotency_key: crypto.randomUUID(), ...(reason ? { reason } : {}) });
    });
    $('music').addEventListener('click', () => {
      const audio = $('hold-music');
      if (audio.paused) { audio.play(); $('music').textContent = t('pauseMusic'); $('music').setAttribute('aria-pressed', 'true'); }
      else { audio.pause(); $('music').textContent = t('playMusic'); $('music').setAttribute('aria-pressed', 'false'); }
    });
    $('compose').addEventListener('submit', (e) => {
      e.preventDefault();
      const body = $('message').value.trim();
      if (!body || !state.conversation) return;
      send(ch, body);
      $('message').value = '';
    });
    // Enter sends, Shift+Enter starts a new line (and Enter while composing with an input method is its own).
    $('message').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('compose').requestSubmit(); }
    });
    $('location').addEventListener('submit', (e) => {
      e.preventDefault();
      const where = $('location-text').value.trim();
      if (!where || !state.conversation) return;
      send(ch, t('whereMessage', { where }));
      $('location').hidden = true;
      $('location-sent').hidden = false;
    });
    $('new-chat').addEventListener('click', resetChat);
    $('save-copy').addEventListener('click', saveCopy);
    $('callback').addEventListener('click', () => {
      $('callback').hidden = true;
      ch.send({ type: 'callback', conversation_id: state.conversation });
    });
    wireVideo(ch, setStatus);
    wireInvite(ch, currentVisit);
    wirePrecall(ch);
    $('leave').addEventListener('click', () => ch.send({ type: 'end', conversation_id: state.conversation }));
  } catch (e) {
    setStatus(e.message);
  }
});
window.parent.postMessage({ type: 'examroom:ready' }, '*');
