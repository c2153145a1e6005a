// The nurse's screen in a call: shown to the patient ("Share my screen": the server offers it to the patient's
// connection), and, when the visit's recording policy records her screen (`video_started.record_screen`),
// captured for the recording ("Record my screen"). One capture serves both; a secure pause covers it like her
// camera. Browsers let a page capture the screen only after a click and their own picker, so these are buttons,
// never automatic. A window or a tab is suggested rather than the whole screen: other patients' chats must stay
// out of this patient's visit.

/** Wires and shows the screen controls of a call; the recording line only when the visit records the screen. */
export function screenRecording(chat, recordScreen) {
  chat.video.recordScreen = recordScreen;
  chat.el.querySelector('.screen-recording').hidden = !recordScreen;
  for (const [sel, action] of [['.screen-recording button', record], ['.screen-share', share]]) {
    const button = chat.el.querySelector(sel);
    if (!button.dataset.wired) {
      button.dataset.wired = '1';
      button.addEventListener('click', () => action(chat));
    }
  }
  chat.el.querySelector('.screen-share').hidden = !chat.video.call;
  render(chat);
}

/** Asks the browser for a capture and sends it; false when she cancelled or it is not allowed. */
async function capture(chat, shared) {
  const call = chat.video.call;
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5, displaySurface: 'window' }, audio: false, selfBrowserSurface: 'exclude' });
    call.screenShared = shared;
    await call.setScreen(stream.getVideoTracks()[0], () => render(chat));
    return true;
  } catch (e) {
    chat.el.querySelector('.screen-state').textContent = 'Your screen is not being shared (cancelled or not allowed).';
    return false;
  }
}

async function record(chat) {
  const call = chat.video.call;
  if (!call) return;
  if (call.screen) await call.setScreen(null);
  else await capture(chat, false);
  render(chat, true);
}

async function share(chat) {
  const call = chat.video.call;
  if (!call) return;
  if (!call.screen) await capture(chat, true);
  else if (!call.screenShared) call.shareScreen(true);
  // Stopping the share keeps the capture only while the recording wants it.
  else if (chat.video.recordScreen) call.shareScreen(false);
  else await call.setScreen(null);
  render(chat, true);
}

/**
 * The server refused an offer naming the screen (the visit moved to a server where it is not recorded, say):
 * stop the capture and offer again without it, and say so.
 */
export async function screenRefused(chats) {
  for (const chat of chats) {
    const call = chat.video.call;
    if (!call?.screen) continue;
    await call.step(async () => {
      if (call.pc.signalingState === 'have-local-offer') await call.pc.setLocalDescription({ type: 'rollback' });
    });
    await call.setScreen(null);
    render(chat);
    chat.el.querySelector('.screen-state').textContent = 'Your screen is not being recorded: the server refused it.';
  }
}

function render(chat, keepMessage) {
  const call = chat.video.call;
  const on = !!call?.screen;
  const shared = on && !!call.screenShared;
  const shareButton = chat.el.querySelector('.screen-share');
  shareButton.textContent = shared ? 'Stop sharing my screen' : 'Share my screen';
  shareButton.setAttribute('aria-pressed', String(shared));
  const line = chat.el.querySelector('.screen-recording');
  line.querySelector('button').textContent = on ? 'Stop recording my screen' : 'Record my screen';
  line.querySelector('button').setAttribute('aria-pressed', String(on));
  const state = line.querySelector('.screen-state');
  if (shared) state.textContent = 'The patient sees your screen' + (chat.video.recordScreen ? ', and it is recorded (opening a sensitive EMR section pauses it).' : '.');
  else if (on) state.textContent = 'Your screen is recorded for the visit record (the patient does not see it; opening a sensitive EMR section pauses it).';
  else if (!keepMessage || !state.textContent) state.textContent = 'This visit’s recording policy records your screen: share it when you are ready.';
  // Without a recording line the share's state is said beside its button.
  const note = chat.el.querySelector('.screen-note');
  note.textContent = shared && !chat.video.recordScreen ? 'The patient sees your screen.' : '';
}
