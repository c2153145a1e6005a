// The patient's side of a video visit in the widget: the prompt, the device check (audio only when the camera
// is blocked or missing), the call with its controls (mute, camera off, audio only) and what the nurse is
// sending. Frames and fields: docs/protocol.md, "Video".
import { connectionQuality, deviceCheck, VideoCall } from '/widget/video.js';
import { LANG, t, whoLabel } from '/widget/i18n.js';
import { clearTiles, nameTile, showTile } from '/widget/tiles.js';
import { clearParty } from '/widget/guests.js';

const $ = (id) => document.getElementById(id);

// The visit: the proposal or start frame, the device check, the call, the nurse's microphone and camera.
// `slowLink`: the server sends this side audio only while its connection is too slow for video (`video_link`).
const video = { visitId: null, started: null, check: null, call: null, joinWhenStarted: false, audioOnly: false, nurse: null, slowLink: false };
/** The visit in progress (its id), for the guest invitation. */
export const currentVisit = () => video.visitId;

const RECORDING = { recording: 'recording', paused: 'recordingPaused', declined: 'notRecorded', will_record: 'recording' };

const STATES = { new: 'stateStarting', connecting: 'stateConnecting', connected: 'stateConnected', disconnected: 'stateReconnecting', failed: 'stateReconnecting', closed: 'stateLeft' };
const state = (s) => (STATES[s] ? t(STATES[s]) : s);

/** What the nurse is not sending, in the patient's words. */
function nurseMedia(devices, audioOnly) {
  const parts = [];
  if (devices && !devices.microphone) parts.push(t('nurseMuted'));
  if (!audioOnly && devices && !devices.camera) parts.push(t('nurseCameraOff'));
  return parts.join(' ');
}

function showVideo(part) {
  $('video').hidden = false;
  for (const id of ['video-prompt', 'video-check', 'video-call']) $(id).hidden = id !== part;
  // The call screen's layout (widget.css, docs/ui.md) keys on this class.
  document.body.classList.toggle('in-call', part === 'video-call');
  fitBar();
  showMe();
}

/** A call needs the whole widget in view (the picture and its control bar): the portal's loader scrolls the
 *  frame into the page's view when asked, as a phone's page is longer than its screen. */
function showMe() {
  if (document.body.classList.contains('in-call') && window.parent !== window) {
    window.parent.postMessage({ type: 'examroom:show' }, '*');
  }
}

/** The drawer sits on the control bar, whose height depends on how its buttons wrap. */
function fitBar() {
  const bar = document.querySelector('.controls');
  const fixed = getComputedStyle(bar).position === 'fixed';
  document.body.style.setProperty('--bar', `${fixed ? Math.ceil(window.innerHeight - bar.getBoundingClientRect().top) : 56}px`);
}
new ResizeObserver(() => requestAnimationFrame(fitBar)).observe(document.querySelector('.controls'));
window.addEventListener('resize', () => requestAnimationFrame(() => { fitBar(); showMe(); }));

function toggleChat(open = !document.body.classList.contains('chat-open')) {
  document.body.classList.toggle('chat-open', open);
  requestAnimationFrame(fitBar);
  $('chat-toggle').setAttribute('aria-expanded', String(open));
  $('chat-toggle').textContent = open ? t('hideChat') : t('showChat');
  if (open && !$('compose').hidden) $('message').focus();
}

/** Every 2 s while in a call: the connection's quality, from getStats() (round trip and loss). */
let qualityTimer = null;
function watchQuality() {
  clearInterval(qualityTimer);
  let last = null;
  qualityTimer = setInterval(async () => {
    if (!video.call) { clearInterval(qualityTimer); $('video-quality').textContent = ''; return; }
    const q = await connectionQuality(video.call.pc, last).catch(() => null);
    if (!q) return;
    last = q.totals;
    const key = { good: 'qualityGood', fair: 'qualityFair', poor: 'qualityPoor' }[q.level];
    $('video-quality').dataset.level = q.level;
    $('video-quality').textContent = `${q.level === 'good' ? '▮▮▮' : q.level === 'fair' ? '▮▮▯' : '▮▯▯'} ${t(key)}`;
  }, 2000);
}

function showRecording(s) { $('video-recording').textContent = RECORDING[s] ? t(RECORDING[s]) : ''; }

function closeVideo(message) {
  // Focus inside the video section would fall to the page when it hides: it goes back to the chat.
  const hadFocus = $('video').contains(document.activeElement);
  video.call?.pc.close();
  video.check?.stop();
  video.check?.stream.getTracks().forEach((t) => t.stop());
  Object.assign(video, { visitId: null, started: null, check: null, call: null, joinWhenStarted: false, audioOnly: false, nurse: null, cameraless: false, slowLink: false });
  $('video').hidden = true;
  document.body.classList.remove('in-call');
  toggleChat(false);
  clearInterval(qualityTimer);
  $('video-quality').textContent = '';
  clearTiles($('video-tiles'));
  clearParty();
  showRecording('none');
  if (message) { $('notice').hidden = false; $('notice').textContent = message; }
  if (hadFocus) ($('compose').hidden ? $('status') : $('message')).focus();
}

/** The controls and the nurse's state as they stand. */
function render() {
  const mine = video.call?.devices ?? { microphone: true, camera: true };
  // No picture to show: a card says why, instead of the nurse's last frame frozen on screen.
  $('video-remote').hidden = video.audioOnly || video.slowLink;
  $('video-audio-only').hidden = !(video.audioOnly || video.slowLink);
  $('video-audio-only').textContent = video.audioOnly ? t('audioOnlyCard') : t('slowCard');
  $('video-mic').textContent = mine.microphone ? t('mute') : t('unmute');
  $('video-mic').setAttribute('aria-pressed', String(!mine.microphone));
  $('video-camera').hidden = video.audioOnly;
  $('video-camera').textContent = mine.camera ? t('cameraOff') : t('cameraOn');
  $('video-camera').setAttribute('aria-pressed', String(!mine.camera));
  $('video-mode').textContent = video.audioOnly ? t('videoBack') : t('toAudioOnly');
  // Yourself, small: only while your camera sends.
  $('video-self').hidden = video.audioOnly || !mine.camera || !video.call;
  $('video-remote-media').textContent = nurseMedia(video.nurse, video.audioOnly);
}

async function applyMode() {
  if (!video.call) { render(); return; }
  const ok = await video.call.applyAudioOnly(video.audioOnly);
  if (!ok) {
    // Video is back but this camera cannot open: the nurse sees "camera off" rather than a frozen picture.
    video.call.setDevices({ camera: false });
    $('video-state').textContent += t('cameraFailed');
  }
  render();
}

function startCall(ch) {
  video.joinWhenStarted = false;
  video.check.stop();
  showVideo('video-call');
  $('video-self').srcObject = video.check.stream;
  $('video-state').textContent = t('connectingCall');
  video.call = new VideoCall(ch, video.started, video.check.stream, $('video-remote'), (s) => {
    $('video-state').textContent = s === 'connected' ? t('connectedCall') : t('connectionState', { state: state(s) });
  });
  // A third participant on (a family member, an interpreter): a tile each.
  video.call.onTile = (stream) => showTile($('video-tiles'), stream, t('otherParticipant'));
  video.call.onTilesReset = () => clearTiles($('video-tiles'));
  // The nurse's shared screen, shown under her camera while she shares it.
  video.call.onScreen = (stream) => {
    $('video-screen-box').hidden = !stream;
    $('video-call').classList.toggle('sharing', !!stream);
    $('video-screen').srcObject = stream;
    if (stream) $('video-screen').play().catch(() => {});
  };
  // What this side really sends (a rejoin starts unmuted, whatever the last tab had set).
  video.call.setDevices({});
  applyMode();
  watchQuality();
}

function showCheck(cameraless) {
  video.cameraless = cameraless;
  $('video-preview').hidden = cameraless;
  $('video-no-camera').hidden = !cameraless || !!video.started?.audio_only;
  $('video-retry-camera').hidden = !cameraless || !!video.started?.audio_only;
  $('video-check-text').textContent = cameraless ? t('checkMic') : t('checkBoth');
  $('video-join').textContent = cameraless ? t('joinAudio') : t('joinVideo');
  showVideo('video-check');
  $('video-join').focus();
}

/** Camera and microphone, or the microphone alone when the camera is blocked, missing or failing. */
async function checkDevices(setStatus) {
  video.check?.stop();
  video.check?.stream.getTracks().forEach((t) => t.stop());
  video.check = null;
  const audioOnlyVisit = !!video.started?.audio_only;
  try {
    video.check = await deviceCheck($('video-preview'), $('video-level'), { camera: !audioOnlyVisit });
    video.blocked = false;
    showCheck(audioOnlyVisit);
    return;
  } catch (e) { /* the camera, or both: try the microphone alone */ }
  try {
    video.check = await deviceCheck($('video-preview'), $('video-level'), { camera: false });
    video.blocked = false;
    showCheck(true);
  } catch (e) {
    // The question stays open: the patient can allow the devices and try again, or say not now.
    video.blocked = true;
    setStatus(t('micBlocked'));
  }
}

export const videoHandlers = {
  video_proposed(f) {
    video.visitId = f.visit_id;
    $('video-consent').hidden = f.recording !== 'consent_required';
    // The broker words the question from the recording policy (who may view it, how long it is kept), in
    // English and in the widget's other languages.
    $('video-consent-text').textContent = (f.consent_translations || {})[LANG] || f.consent_text || '';
    $('video-consent-box').checked = false;
    showVideo('video-prompt');
    // The recording question comes first when there is one: it is read, and answered, before the devices.
    (f.recording === 'consent_required' ? $('video-consent-box') : $('video-allow')).focus();
  },
  video_started(f, ch) {
    if (video.call && f.visit_id === video.visitId) {
      const epoch = f.epoch || 0;
      if (epoch < video.call.epoch) return; // from before the visit last moved
      // The visit moved to another server, or this socket came back (a same-epoch `video_started` is sent on a
      // reconnect) while the call is not connected: what the server said meanwhile (its candidates) was lost, so
      // join with a new connection; nothing to answer again.
      if (epoch > video.call.epoch || video.call.pc.connectionState !== 'connected') {
        video.started = { ...f, audio_only: video.audioOnly };
        $('video-state').textContent = t('reconnectingVideo');
        // A new connection starts with video: the server says again if this link is too slow for it.
        video.slowLink = false;
        render();
        video.call.rejoin(f);
        if (video.audioOnly) ch.send({ type: 'video_mode', visit_id: video.visitId, audio_only: true, reason: video.audioOnlyReason || 'requested' });
        return;
      }
    }
    video.visitId = f.visit_id;
    video.started = f;
    video.audioOnly = !!f.audio_only;
    showRecording(f.recording);
    // Only the first `video_started` after "Join video" starts a call: the same frame again (a socket that came
    // back while the call is connected) must not start a second one beside it.
    if (video.joinWhenStarted && video.check && !video.call) { startCall(ch); return; }
    // A reload during the visit: check the devices again, then rejoin.
    if (!video.call) { showVideo(video.check ? 'video-check' : 'video-prompt'); video.joinWhenStarted = !!video.check; }
    else applyMode();
  },
  video_media(f) {
    if (f.visit_id !== video.visitId || f.side !== 'nurse') return;
    video.nurse = { microphone: f.microphone, camera: f.camera };
    render();
  },
  video_mode(f) {
    if (f.visit_id !== video.visitId) return;
    video.audioOnly = f.audio_only;
    video.audioOnlyReason = f.reason;
    if (video.started) video.started.audio_only = f.audio_only;
    $('video-state').textContent = f.by === 'nurse'
      ? (f.audio_only ? t('nurseAudioOnly') : t('nurseVideoBack'))
      : (f.audio_only ? t('youAudioOnly') : t('youVideoBack'));
    applyMode();
  },
  recording_state(f) { if (f.visit_id === video.visitId) showRecording(f.state); },
  // The nurse handed the visit on with the chat: who takes over, or the next nurse from the queue.
  video_handover(f) {
    if (f.visit_id === video.visitId) $('video-state').textContent = f.nurse ? t('handoverTo', { name: f.nurse }) : t('handoverQueue');
  },
  video_tile(f) {
    if (f.visit_id !== video.visitId) return;
    // A guest is named as one: a name they typed cannot pass for the nurse's picture.
    const who = !f.who ? '' : f.who.name ? whoLabel(f.who.role, f.who.name) : t(f.who.role === 'nurse' ? 'whoNurse' : 'whoPatient');
    nameTile($('video-tiles'), $('video-remote'), f.stream_id, who, t('otherParticipant'));
  },
  video_sdp(f) { if (video.call && f.visit_id === video.visitId) video.call.answer(f.sdp); },
  video_candidate(f) { if (video.call && f.visit_id === video.visitId) video.call.candidate(f.candidate); },
  video_renegotiate(f) { if (video.call && f.visit_id === video.visitId) video.call.renegotiate(); },
  video_server_offer(f) {
    if (video.call && f.visit_id === video.visitId) video.call.serverOffer(f.sdp).catch((e) => console.warn(`server offer: ${e.message}`));
  },
  video_link(f) {
    if (!video.call || f.visit_id !== video.visitId) return;
    $('video-state').textContent = f.side === 'patient'
      ? (f.audio_only ? t('slowYou') : t('betterYou'))
      : (f.audio_only ? t('slowNurse') : t('betterNurse'));
    if (f.side === 'patient') { video.slowLink = !!f.audio_only; render(); }
  },
  video_peer(f) {
    if (f.side === 'nurse' && video.call) $('video-state').textContent = t('nurseIs', { state: state(f.state) });
  },
  video_ended(f) {
    // Another visit's end, or the end of this visit on a server it has since left: not ours.
    if (video.visitId && f.visit_id !== video.visitId) return;
    if (video.call && (f.epoch || 0) < video.call.epoch) return;
    video.blocked = false;
    // With the chat's end the widget says it once (app.js `ended`).
    closeVideo(f.reason === 'declined' || f.reason === 'devices_blocked' || f.reason === 'chat_ended' ? null
      : f.reason === 'no_answer' ? t('endedNoAnswer')
      : f.reason === 'server_restart' ? t('endedRestart')
      : f.reason === 'connection_lost' ? t('endedLost')
      : f.reason === 'removed' ? t('endedRemoved')
      : f.reason === 'left' ? t('endedLeft')
      : t('endedVideo'));
  },
};

/** Wires the video buttons to the channel. */
export function wireVideo(ch, setStatus) {
  $('video-allow').addEventListener('click', () => checkDevices(setStatus));
  $('video-retry-camera').addEventListener('click', () => checkDevices(setStatus));
  $('video-decline').addEventListener('click', () => {
    if (video.started) { ch.send({ type: 'video_leave', visit_id: video.visitId }); closeVideo(); return; }
    const decline_reason = video.blocked ? 'devices_blocked' : 'declined';
    ch.send({ type: 'video_answer', visit_id: video.visitId, accept: false, decline_reason });
  });
  $('video-join').addEventListener('click', () => {
    if (video.started) {
      // Rejoining a video visit without a camera: it goes on audio only for both.
      if (video.cameraless && !video.started.audio_only) ch.send({ type: 'video_mode', visit_id: video.visitId, audio_only: true, reason: 'camera_unavailable' });
      startCall(ch);
      return;
    }
    video.joinWhenStarted = true;
    if (video.cameraless) video.audioOnlyReason = 'camera_unavailable';
    const consent = $('video-consent').hidden ? null : $('video-consent-box').checked;
    // The answer names the language of the question it answers (kept with the consent).
    ch.send({ type: 'video_answer', visit_id: video.visitId, accept: true, recording_consent: consent,
      ...(consent === null ? {} : { consent_language: LANG }), audio_only: !!video.cameraless });
  });
  $('video-mic').addEventListener('click', () => { video.call?.setDevices({ microphone: !video.call.devices.microphone }); render(); });
  $('video-camera').addEventListener('click', () => { video.call?.setDevices({ camera: !video.call.devices.camera }); render(); });
  $('video-mode').addEventListener('click', () => ch.send({ type: 'video_mode', visit_id: video.visitId, audio_only: !video.audioOnly }));
  $('video-end').addEventListener('click', () => { video.call?.close(true); });
  $('chat-toggle').addEventListener('click', () => toggleChat());
}
