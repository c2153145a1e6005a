// The nurse workspace: presence, offers, several chats with transcripts. Authenticated by the staff session
// cookie; speaks the same WebSocket protocol as the widget (docs/protocol.md).
import { Channel } from '/widget/channel.js';
import { connectionQuality, deviceCheck, describeMedia, VideoCall } from '/widget/video.js';
import { screenRecording, screenRefused } from '/workspace/screen.js';
import { clearGuests, consultRefused, guestTiles, partyHandlers } from '/workspace/guests.js';
import { CHAT_PANEL } from '/workspace/panel.js';
import { showColleagues, transferAsked, transferControl, transferNotTaken, transferRefused, transferred } from '/workspace/transfer.js';

const $ = (id) => document.getElementById(id);
const chats = new Map(); // conversation_id -> { el, list, lastSeq, seen, outbox }
let channel;
let wrapUpSpec = null; // { seconds, dispositions } from the welcome frame
let queues = []; // where a chat may be transferred, from the welcome frame

/** An ended chat's transcript folds away behind "Show transcript". */
function foldTranscript(el) {
  el.classList.add('ended');
  const transcript = el.querySelector('ol');
  const toggle = document.createElement('button');
  toggle.type = 'button';
  toggle.className = 'secondary';
  toggle.textContent = 'Show transcript';
  toggle.setAttribute('aria-expanded', 'false');
  toggle.addEventListener('click', () => {
    transcript.hidden = !transcript.hidden;
    toggle.textContent = transcript.hidden ? 'Show transcript' : 'Hide transcript';
    toggle.setAttribute('aria-expanded', String(!transcript.hidden));
  });
  transcript.hidden = true;
  transcript.before(toggle);
}

/** After a chat ends: the transcript folds away, and the nurse records a disposition and notes while the
 * wrap-up time runs; "Ready now" ends wrap-up early. */
function wrapUp(el, conversationId) {
  foldTranscript(el);
  if (!wrapUpSpec) return;
  const form = document.createElement('form');
  form.className = 'wrap-up';
  form.innerHTML = `<h4 tabindex="-1">Wrap-up</h4>
    <p class="wrap-up-time" role="timer" aria-live="off"></p>
    <p><label>Disposition <select required></select></label></p>
    <p><label>Notes (optional) <textarea rows="3" maxlength="4000"></textarea></label></p>
    <p><button type="submit">Save wrap-up</button> <button type="button" class="ready-now">Ready now</button>
      <button type="button" class="dismiss secondary">Close</button></p>
    <p class="wrap-up-status" role="status"></p>`;
  const select = form.querySelector('select');
  for (const d of wrapUpSpec.dispositions) select.append(new Option(d, d));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    channel.send({ type: 'wrap_up', conversation_id: conversationId, disposition: select.value, notes: form.querySelector('textarea').value });
  });
  form.querySelector('.ready-now').addEventListener('click', () => channel.send({ type: 'presence', state: 'ready' }));
  form.querySelector('.dismiss').addEventListener('click', () => { clearInterval(el.wrapUpTimer); el.remove(); $('chats-title').focus(); });
  let left = wrapUpSpec.seconds;
  const time = form.querySelector('.wrap-up-time');
  const tick = () => {
    time.textContent = left > 0 ? `${left} s of wrap-up left; then you are offered the next patient.` : 'Wrap-up time is over.';
    if (left-- <= 0) clearInterval(el.wrapUpTimer);
  };
  tick();
  el.wrapUpTimer = setInterval(tick, 1000);
  el.appendChild(form);
  form.querySelector('h4').focus();
}

function chatPanel(c) {
  if (chats.has(c.conversation_id)) return chats.get(c.conversation_id);
  const el = document.createElement('article');
  el.className = 'chat';
  el.dataset.conversation = c.conversation_id;
  el.innerHTML = CHAT_PANEL;
  el.querySelector('h3').textContent = `${c.reference} · ${c.queue}`;
  flagChat(el, c.emergency);
  const chat = { el, list: el.querySelector('ol'), lastSeq: 0, seen: new Set(), outbox: new Map(), mine: new Set() };
  el.querySelector('form').addEventListener('submit', (e) => {
    e.preventDefault();
    const box = el.querySelector('textarea');
    const body = box.value.trim();
    if (!body) return;
    const key = crypto.randomUUID();
    chat.outbox.set(key, body);
    channel.send({ type: 'send', conversation_id: c.conversation_id, idempotency_key: key, body });
    box.value = '';
  });
  el.querySelector('textarea').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); el.querySelector('form').requestSubmit(); }
  });
  el.querySelector('.end').addEventListener('click', () => channel.send({ type: 'end', conversation_id: c.conversation_id }));
  transferControl(el, c.conversation_id, queues, (f) => channel.send(f));
  chat.video = { visitId: null, started: null, check: null, call: null, states: {} };
  const q = (sel) => el.querySelector(sel);
  q('.video-start').addEventListener('click', async () => {
    q('.video').hidden = false;
    try {
      chat.video.check = chat.video.check || await deviceCheck(q('.preview'), q('.check meter'));
      q('.check').hidden = false;
      q('.video-go').textContent = chat.video.started ? 'Join video' : 'Ask the patient to join video';
      q('.video-go').focus();
    } catch (e) {
      console.warn(`device check failed: ${e.name}: ${e.message}`);
      q('.video-status').textContent = `Camera or microphone unavailable (${e.name}).`;
    }
  });
  q('.video-go').addEventListener('click', () => {
    if (chat.video.started) { joinVideo(chat); return; }
    // The check's result goes with the request: the server refuses one without working camera and microphone.
    const live = (kind) => chat.video.check?.stream.getTracks().some((t) => t.kind === kind && t.readyState === 'live') ?? false;
    channel.send({ type: 'video_request', conversation_id: c.conversation_id, device_check: { camera: live('video'), microphone: live('audio') } });
    q('.video-status').textContent = 'Asking the patient…';
  });
  // Opening a sensitive record section pauses the visit's recording; closing it resumes.
  el.querySelector('.emr .sensitive').addEventListener('toggle', async (e) => {
    if (!chat.video.visitId || !chat.video.started) return;
    const open = e.target.open;
    const resp = await fetch(`/api/v1/visits/${chat.video.visitId}/recording-state`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ state: open ? 'paused' : 'active', reason: `EMR section ${open ? 'opened' : 'closed'}: ${e.target.dataset.section}` }),
    });
    if (!resp.ok && resp.status !== 400) q('.recording').textContent = 'Could not change the recording state.';
  });
  q('.video-mic').addEventListener('click', () => { chat.video.call?.setDevices({ microphone: !chat.video.call.devices.microphone }); renderControls(chat); });
  q('.video-camera').addEventListener('click', () => { chat.video.call?.setDevices({ camera: !chat.video.call.devices.camera }); renderControls(chat); });
  q('.video-mode').addEventListener('click', () => channel.send({ type: 'video_mode', visit_id: chat.video.visitId, audio_only: !chat.video.audioOnly }));
  q('.video-end').addEventListener('click', () => {
    if (chat.video.call) chat.video.call.close(true);
    else if (chat.video.visitId) channel.send({ type: 'video_end', visit_id: chat.video.visitId });
    else closeVideo(chat);
  });
  $('chats').appendChild(el);
  chats.set(c.conversation_id, chat);
  channel.send({ type: 'sync', conversation_id: c.conversation_id, after_seq: 0 });
  channel.send({ type: 'preview', conversation_id: c.conversation_id });
  return chat;
}

/** The emergency flag on a chat: the patient wrote of emergency symptoms or of suicide or self-harm. */
function flagChat(el, on) {
  let flag = el.querySelector('.flag');
  if (!on) { flag?.remove(); return; }
  if (flag) return;
  flag = document.createElement('p');
  flag.className = 'flag';
  flag.setAttribute('role', 'alert');
  flag.textContent = '⚠ Emergency flagged: the patient wrote of emergency symptoms or of harming themselves. They were shown the emergency notice and asked where they are.';
  el.querySelector('h3').after(flag);
}

function chatOfVisit(visitId) {
  return [...chats.values()].find((c) => c.video?.visitId === visitId);
}

/** A connection state as the nurse reads it: a lost link is being re-established, not "disconnected". */
const VIDEO_STATES = { new: 'starting', connecting: 'connecting', connected: 'connected', disconnected: 'reconnecting…', failed: 'reconnecting…', closed: 'left' };

function showStates(chat) {
  const s = chat.video.states;
  const word = (state) => VIDEO_STATES[state] || state || 'not connected';
  chat.el.querySelector('.video-status').textContent = `Video: you ${word(s.nurse)}, patient ${word(s.patient)}.`;
}

const AUDIO_ONLY = { camera_unavailable: 'Audio only: the patient\'s camera is blocked or missing.', requested: 'Audio only.' };

/** The call's controls, the audio-only card and what the patient is sending, as they stand. */
function renderControls(chat) {
  const v = chat.video;
  const q = (sel) => chat.el.querySelector(sel);
  const mine = v.call?.devices;
  for (const b of ['.video-mic', '.video-camera', '.video-mode']) q(b).hidden = !v.call;
  // Nothing to end once the video is over.
  q('.video-end').hidden = !v.call && !v.visitId && !v.check;
  q('.remote').hidden = !v.call || !!v.audioOnly;
  q('.audio-only').hidden = !v.call || !v.audioOnly;
  q('.audio-only').textContent = `${AUDIO_ONLY[v.audioOnly] || 'Audio only.'} You hear each other; no video is sent.`;
  if (mine) {
    q('.video-mic').textContent = mine.microphone ? 'Mute' : 'Unmute';
    q('.video-mic').setAttribute('aria-pressed', String(!mine.microphone));
    q('.video-camera').textContent = mine.camera ? 'Turn camera off' : 'Turn camera on';
    q('.video-camera').setAttribute('aria-pressed', String(!mine.camera));
    q('.video-camera').hidden = !!v.audioOnly;
  }
  q('.video-mode').textContent = v.audioOnly ? 'Turn video back on' : 'Switch to audio only';
  q('.self').hidden = !v.call || !!v.audioOnly || !mine?.camera;
  q('.patient-media').textContent = describeMedia('The patient', v.patient, !!v.audioOnly);
}

async function applyMode(chat) {
  const v = chat.video;
  if (v.call && !(await v.call.applyAudioOnly(!!v.audioOnly))) {
    v.call.setDevices({ camera: false });
    chat.el.querySelector('.video-status').textContent = 'Your camera could not be opened again; the patient hears you only.';
  }
  renderControls(chat);
}

function joinVideo(chat) {
  const v = chat.video;
  v.check.stop();
  chat.el.querySelector('.check').hidden = true;
  v.call = new VideoCall(channel, v.started, v.check.stream, chat.el.querySelector('.remote'), () => {});
  guestTiles(chat, channel);
  chat.el.classList.add('in-call');
  // The call comes into view at its top (the patient's picture, then the controls, which stay on screen),
  // unless she is busy in another chat; again once the patient's picture has its size (until then the page may
  // be too short to scroll the chat to the top, and the picture would then grow past the fold).
  const intoView = () => {
    const busyElsewhere = document.activeElement && document.activeElement !== document.body && !chat.el.contains(document.activeElement);
    if (!busyElsewhere) chat.el.scrollIntoView({ block: 'start', behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
  };
  intoView();
  chat.el.querySelector('.remote').addEventListener('loadedmetadata', intoView, { once: true });
  chat.el.querySelector('.self').srcObject = v.check.stream;
  v.call.setDevices({});
  // The connection's quality every 2 s while the call lasts.
  clearInterval(v.qualityTimer);
  let last = null;
  v.qualityTimer = setInterval(async () => {
    const box = chat.el.querySelector('.quality');
    if (!v.call) { clearInterval(v.qualityTimer); box.textContent = ''; return; }
    const qn = await connectionQuality(v.call.pc, last).catch(() => null);
    if (!qn) return;
    last = qn.totals;
    box.dataset.level = qn.level;
    box.textContent = `Connection: ${qn.level} (${Math.round(qn.rttMs)} ms, ${qn.lossPct.toFixed(1)}% lost)`;
  }, 2000);
  showStates(chat);
  applyMode(chat);
  screenRecording(chat, !!v.started?.record_screen);
}

function closeVideo(chat, message) {
  const v = chat.video;
  v.call?.pc.close();
  v.call?.screen?.stop();
  chat.el.classList.remove('in-call');
  clearInterval(v.qualityTimer);
  v.check?.stop();
  v.check?.stream.getTracks().forEach((t) => t.stop());
  Object.assign(v, { visitId: null, started: null, check: null, call: null, states: {}, audioOnly: null, patient: null });
  renderControls(chat);
  chat.el.querySelector('.check').hidden = true;
  chat.el.querySelector('.recording').textContent = '';
  screenRecording(chat, false);
  clearGuests(chat);
  chat.el.querySelector('.video').hidden = !message;
  chat.el.querySelector('.video-status').textContent = message || '';
}

const RECORDING = { recording: '● Recording', paused: 'Recording paused', declined: 'Not recorded (the patient declined)', will_record: '● Recording', consent_required: 'Recording if the patient consents', none: '' };

const PATIENT_PRESENCE = { online: 'Patient online.', reconnecting: 'Patient reconnecting…', gone: 'The patient has left (no connection).' };
const ENDED = { no_answer: 'The patient did not answer the video request in time. You can ask again.', devices_blocked: 'The patient\'s camera or microphone is blocked; they were shown how to allow it. You can ask again.', declined: 'The patient declined video.', patient_ended: 'The patient ended the video.', nurse_ended: 'Video ended.', abandoned: 'Video closed: nobody was connected.', chat_ended: 'Video ended with the chat.', server_restart: 'Video ended: the server restarted. You can start it again.', connection_lost: 'Video ended: the patient\'s connection did not come back. You can keep chatting or start it again.', transferred: 'The visit went on with the chat to another nurse; you are no longer in it.' };

function label(li, who) {
  li.className = who === 'You' ? 'mine' : '';
  li.textContent = `${who}: ${li.dataset.body}`;
}

function addLine(chat, f) {
  if (chat.seen.has(f.seq)) return;
  chat.seen.add(f.seq);
  chat.lastSeq = Math.max(chat.lastSeq, f.seq);
  const li = document.createElement('li');
  li.dataset.seq = f.seq;
  li.dataset.body = f.body;
  // "You" only for what this nurse sent (acknowledged to her): a chat transferred to her, or read after a
  // reload, shows another nurse's words as the nurse's, not as hers.
  label(li, f.sender_role === 'patient' ? 'Patient' : chat.mine.has(f.seq) ? 'You' : 'Nurse');
  chat.list.appendChild(li);
  chat.list.scrollTop = chat.list.scrollHeight;
}

function removeOffer(id) {
  const li = document.querySelector(`#offers li[data-conversation="${CSS.escape(id)}"]`);
  clearInterval(li?.countdown);
  li?.remove();
}

/** Who the patient is and why they came: the name and birth date verified by the portal, the reason, the
 * first message. Shown on the offer and at the top of the chat; never stored by this page. */
function showPreview(f) {
  const born = f.birthdate ? ` · born ${birthDate(f.birthdate)}` : '';
  const lines = [
    ['who', `${f.name ?? 'Name not given by the portal'}${born}`],
    ['reason', f.reason ? `Reason: ${f.reason}` : 'No reason given.'],
    ['first', f.first_message ? `First message: “${f.first_message}”` : ''],
  ];
  const offer = document.querySelector(`#offers li[data-conversation="${CSS.escape(f.conversation_id)}"]`);
  // The flag may have come after the offer was sent: the preview is newer.
  if (f.emergency && offer) flagOffer(offer);
  if (f.emergency && chats.has(f.conversation_id)) flagChat(chats.get(f.conversation_id).el, true);
  const targets = [offer?.querySelector('.patient-context'), chats.get(f.conversation_id)?.el.querySelector('.patient-context')];
  for (const box of targets.filter(Boolean)) {
    box.replaceChildren(...lines.filter(([, t]) => t).map(([cls, t]) => {
      const p = document.createElement('p');
      p.className = cls;
      p.textContent = t;
      return p;
    }));
  }
}

/** `1980-04-02` as "Apr 2, 1980 (46 years)"; a year alone (`1980`) as is. */
function birthDate(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || text.startsWith('0000')) return text;
  const d = new Date(`${text}T00:00:00`);
  const now = new Date();
  const age = now.getFullYear() - d.getFullYear() - (now < new Date(now.getFullYear(), d.getMonth(), d.getDate()) ? 1 : 0);
  return `${d.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })} (${age} years)`;
}

/** The emergency flag at the head of an offer (once). */
function flagOffer(li) {
  if (li.classList.contains('urgent')) return;
  li.classList.add('urgent');
  const flag = document.createElement('strong');
  flag.className = 'flag';
  flag.textContent = '⚠ Emergency flagged ';
  li.querySelector('.offer-head').prepend(flag);
}

/** A short two-note chime for a new offer (Web Audio: no file to load; one context for the page). */
let chimeContext = null;
function chime() {
  try {
    chimeContext = chimeContext || new AudioContext();
    const ctx = chimeContext;
    [660, 880].forEach((hz, i) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.15, ctx.currentTime + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + i * 0.18 + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + i * 0.18);
      osc.stop(ctx.currentTime + i * 0.18 + 0.17);
    });
  } catch { /* no audio output: the offer is still on screen */ }
}

const handlers = {
  welcome(f) {
    $('presence').textContent = f.presence || 'away';
    wrapUpSpec = f.wrap_up || null;
    queues = f.queues || [];
    for (const c of f.conversations) {
      // A chat already on screen after a reconnect: fetch what was written while the socket was away.
      const known = chats.get(c.conversation_id);
      if (known) channel.send({ type: 'sync', conversation_id: c.conversation_id, after_seq: known.lastSeq });
      else chatPanel(c);
    }
    $('connection').textContent = 'Connected.';
    // Enabled once the socket is up: a click before the page wired its handlers would be lost.
    $('ready').disabled = false;
    $('away').disabled = false;
  },
  presence(f) {
    $('presence').textContent = f.state.replace('_', '-');
    if (f.state === 'wrap_up') return;
    // Wrap-up is over (time, or "Ready now"): notes can still be saved, the timer goes.
    for (const el of document.querySelectorAll('article.chat.ended')) {
      clearInterval(el.wrapUpTimer);
      el.querySelector('.ready-now')?.remove();
      const time = el.querySelector('.wrap-up-time');
      if (time) time.textContent = '';
    }
  },
  offer(f) {
    removeOffer(f.conversation_id);
    const li = document.createElement('li');
    li.dataset.conversation = f.conversation_id;
    // Heading line (flag, reference, queue, wait, time left), who and why (filled by `preview`), then the buttons.
    const head = document.createElement('p');
    head.className = 'offer-head';
    // A colleague handing her chat on says so first.
    head.textContent = `${f.from_nurse ? `Transfer from ${f.from_nurse}: ` : ''}${f.reference} (${f.queue}), waited ${f.waited_seconds} s `;
    const left = document.createElement('span');
    left.className = 'countdown';
    // A timer is not announced each second inside the offers' live region.
    left.setAttribute('role', 'timer');
    left.setAttribute('aria-live', 'off');
    let seconds = f.expires_in_seconds;
    const tick = () => { left.textContent = seconds > 0 ? `· ${seconds} s to answer` : '· expiring'; seconds -= 1; };
    tick();
    li.countdown = setInterval(tick, 1000);
    head.appendChild(left);
    li.append(head);
    if (f.emergency) flagOffer(li);
    const preview = document.createElement('div');
    preview.className = 'patient-context';
    const buttons = document.createElement('p');
    for (const [label, type] of [['Accept', 'accept'], ['Decline', 'decline']]) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.addEventListener('click', () => { channel.send({ type, conversation_id: f.conversation_id }); removeOffer(f.conversation_id); });
      buttons.append(b, ' ');
    }
    li.append(preview, buttons);
    $('offers').appendChild(li);
    channel.send({ type: 'preview', conversation_id: f.conversation_id });
    chime();
    // The system notification names no patient: it may show on a shared screen or a lock screen.
    if (document.hidden && window.Notification?.permission === 'granted') {
      new Notification(f.emergency ? 'Emergency chat waiting' : 'New chat offered', { body: `${f.reference} · ${f.queue}`, tag: f.conversation_id });
    }
  },
  offer_ended(f) { removeOffer(f.conversation_id); },
  wrap_up_saved(f) {
    // The newest ended panel of that chat (an older one, from before it came back to this nurse, has no form).
    const form = [...document.querySelectorAll(`article.chat.ended[data-conversation="${CSS.escape(f.conversation_id)}"] form.wrap-up`)].at(-1);
    if (!form) return;
    form.querySelector('.wrap-up-status').textContent = 'Wrap-up saved.';
    // Written once: the fields stay to be read, not to be saved again.
    for (const el of form.querySelectorAll('select, textarea, button[type="submit"]')) el.disabled = true;
  },
  preview(f) { showPreview(f); },
  conversation(f) { flagChat(chatPanel(f.conversation).el, f.conversation.emergency); },
  colleagues(f) { showColleagues(chats.get(f.conversation_id)?.el, f); },
  transfer_ended(f) { transferNotTaken(chats.get(f.conversation_id)?.el, f); },
  transfer_asked(f) { transferAsked(f); },
  message(f) { const chat = chats.get(f.conversation_id); if (chat) addLine(chat, f); },
  synced(f) { const chat = chats.get(f.conversation_id); if (chat && f.more) channel.send({ type: 'sync', conversation_id: f.conversation_id, after_seq: f.last_seq }); },
  ack(f) {
    const chat = chats.get(f.conversation_id);
    if (!chat) return;
    chat.outbox.delete(f.idempotency_key);
    chat.mine.add(f.seq);
    const li = chat.list.querySelector(`li[data-seq="${f.seq}"]`);
    if (li) label(li, 'You');
  },
  ended(f) {
    const chat = chats.get(f.conversation_id);
    if (!chat) return;
    chat.el.querySelector('form').hidden = true;
    closeVideo(chat);
    const ending = { returned_to_queue: ' (returned to the queue while you were away)', transferred: ' (transferred)' };
    chat.el.querySelector('h3').textContent += ending[f.reason] ?? ' (ended)';
    if (f.reason === 'transferred') transferred(chat.el, f.conversation_id, (m) => channel.send(m), () => $('chats-title').focus());
    // Her part of a transferred chat is done, but the chat is not: no wrap-up of it here.
    if (!(f.reason in ending)) wrapUp(chat.el, f.conversation_id);
    else foldTranscript(chat.el);
    // The panel stays to be read; if the chat comes to this nurse again it gets a fresh one.
    chats.delete(f.conversation_id);
  },
  patient_presence(f) {
    const chat = chats.get(f.conversation_id);
    if (!chat) return;
    let status = chat.el.querySelector('.patient-presence');
    if (!status) {
      status = document.createElement('p');
      status.className = 'patient-presence';
      status.setAttribute('role', 'status');
      chat.el.querySelector('h3').after(status);
    }
    status.textContent = PATIENT_PRESENCE[f.state] ?? '';
  },
  video_proposed(f) {
    const chat = chats.get(f.conversation_id);
    if (!chat) return;
    chat.video.visitId = f.visit_id;
    chat.el.querySelector('.video').hidden = false;
    // How long the patient has been asked: the nurse decides whether to wait or cancel (End video).
    const asked = Date.now();
    const show = () => {
      const s = Math.floor((Date.now() - asked) / 1000);
      chat.el.querySelector('.video-status').textContent =
        `Waiting for the patient to allow camera and microphone… ${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    };
    show();
    clearInterval(chat.video.promptTimer);
    chat.video.promptTimer = setInterval(show, 1000);
  },
  video_started(f) {
    const chat = chats.get(f.conversation_id);
    if (!chat) return;
    if (chat.video.call && chat.video.visitId === f.visit_id) {
      const epoch = f.epoch || 0;
      if (epoch < chat.video.call.epoch) return; // from before the visit last moved
      // The visit moved to another server, or this socket came back while the call is not connected (what the
      // server said meanwhile was lost): join anew.
      if (epoch > chat.video.call.epoch || chat.video.call.pc.connectionState !== 'connected') {
        chat.video.call.rejoin(f);
        if (chat.video.audioOnly) channel.send({ type: 'video_mode', visit_id: f.visit_id, audio_only: true, reason: chat.video.audioOnly });
        return;
      }
    }
    clearInterval(chat.video.promptTimer);
    Object.assign(chat.video, { visitId: f.visit_id, started: f });
    // Started audio only: the patient joined without a camera (the reason comes with `video_mode` later).
    if (f.audio_only && !chat.video.audioOnly) chat.video.audioOnly = 'camera_unavailable';
    if (!f.audio_only) chat.video.audioOnly = null;
    renderControls(chat);
    if (chat.video.call) applyMode(chat);
    chat.el.querySelector('.recording').textContent = RECORDING[f.recording] ?? '';
    screenRecording(chat, !!f.record_screen && !!chat.video.check);
    chat.el.querySelector('.video').hidden = false;
    if (chat.video.check && !chat.video.call) joinVideo(chat);
    else if (!chat.video.call) chat.el.querySelector('.video-status').textContent = 'Video in progress: use “Start video…” to rejoin.';
  },
  recording_state(f) {
    const chat = chatOfVisit(f.visit_id);
    if (chat) chat.el.querySelector('.recording').textContent = RECORDING[f.state] ?? '';
  },
  video_media(f) {
    const chat = chatOfVisit(f.visit_id);
    if (!chat || f.side !== 'patient') return;
    chat.video.patient = { microphone: f.microphone, camera: f.camera };
    renderControls(chat);
  },
  video_mode(f) {
    const chat = chatOfVisit(f.visit_id);
    if (!chat) return;
    chat.video.audioOnly = f.audio_only ? f.reason : null;
    chat.el.querySelector('.video-status').textContent = f.by === 'patient'
      ? (f.audio_only ? 'The patient switched to audio only.' : 'The patient turned video back on.')
      : (f.audio_only ? 'You switched to audio only.' : 'Video is back on.');
    applyMode(chat);
  },
  video_sdp(f) { chatOfVisit(f.visit_id)?.video.call?.answer(f.sdp); },
  video_candidate(f) { chatOfVisit(f.visit_id)?.video.call?.candidate(f.candidate); },
  video_renegotiate(f) { chatOfVisit(f.visit_id)?.video.call?.renegotiate(); },
  video_server_offer(f) { chatOfVisit(f.visit_id)?.video.call?.serverOffer(f.sdp).catch(() => {}); },
  video_link(f) {
    const chat = chatOfVisit(f.visit_id);
    if (!chat) return;
    chat.el.querySelector('.video-status').textContent = f.side === 'patient'
      ? (f.audio_only ? 'The patient’s connection is too slow for video: they hear you (audio only) until it improves.'
        : 'The patient’s connection improved: they see you again.')
      : (f.audio_only ? 'Your connection is too slow for video: you hear the patient; video returns when it improves.'
        : 'Your connection improved: video is back.');
  },
  ...partyHandlers(chatOfVisit, () => channel),
  video_peer(f) {
    const chat = chatOfVisit(f.visit_id);
    if (!chat) return;
    chat.video.states[f.side] = f.state;
    showStates(chat);
  },
  video_ended(f) {
    const mine = chatOfVisit(f.visit_id);
    // The end of this visit on a server it has since left: not ours.
    if (mine?.video.call && (f.epoch || 0) < mine.video.call.epoch) return;
    const chat = mine || chats.get(f.conversation_id);
    if (chat) clearInterval(chat.video.promptTimer);
    if (chat) closeVideo(chat, ENDED[f.reason] || 'Video ended.');
  },
  error(f) {
    if (f.code === 'video_moving') return; // the visit reconnects by itself on its new server
    if (transferRefused(f.code) || consultRefused(f.code, [...chats.values()])) return;
    if (f.code === 'screen_not_recorded') { screenRefused([...chats.values()]); return; }
    if (f.code === 'server_offer_pending') return; // answered first, then offered again (VideoCall.serverOffer)
    $('connection').textContent = f.code === 'node_draining' ? 'The server is restarting: reconnecting, then try again.' : `Error: ${f.code}`;
  },
};

async function main() {
  const me = await fetch('/api/v1/me');
  if (!me.ok) {
    location.assign('/auth/login?return_to=/workspace/');
    return;
  }
  const who = await me.json();
  $('who').textContent = `Signed in as ${who.display_name ?? 'staff'} (${who.roles.join(', ')})`;
  // Only those the policy lets work the queues get the workspace: anyone else is pointed to their own pages,
  // not to buttons that would fail.
  if (!who.places.includes('workspace')) {
    $('work').hidden = true;
    $('not-nurse').hidden = false;
    return;
  }
  channel = new Channel(null, (f) => handlers[f.type]?.(f), (s) => { $('connection').textContent = s; });
  $('ready').addEventListener('click', () => {
    // Asked on a click (browsers require one): new offers then notify while the workspace is in the background.
    if (window.Notification?.permission === 'default') Notification.requestPermission().catch(() => {});
    channel.send({ type: 'presence', state: 'ready' });
  });
  $('away').addEventListener('click', () => channel.send({ type: 'presence', state: 'away' }));
}

main();
