// Screen recording in the nurse's workspace: when the visit's recording policy records her screen
// (`video_started.record_screen`), she is asked to share it; the capture goes to the recording only (the patient
// never sees it) and a secure pause covers it like her camera. Browsers let a page capture the screen only after
// a click and the browser's own picker, so this is a button, never automatic.

/** Shows the screen-recording line of a call, or hides it when the visit does not record the screen. */
export function screenRecording(chat, recordScreen) {
  const line = chat.el.querySelector('.screen-recording');
  line.hidden = !recordScreen;
  if (!recordScreen) return;
  const button = line.querySelector('button');
  if (!button.dataset.wired) {
    button.dataset.wired = '1';
    button.addEventListener('click', () => toggle(chat));
  }
  render(chat);
}

async function toggle(chat) {
  const call = chat.video.call;
  if (!call) return;
  if (call.screen) {
    await call.setScreen(null);
    render(chat);
    return;
  }
  try {
    // A window or a tab is suggested rather than the whole screen: other patients' chats must stay out of this
    // patient's recording.
    const capture = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5, displaySurface: 'window' }, audio: false });
    await call.setScreen(capture.getVideoTracks()[0], () => render(chat));
  } catch (e) {
    // Cancelled in the picker, or not allowed: the visit goes on, recorded without the screen.
    chat.el.querySelector('.screen-state').textContent = 'Your screen is not being recorded (sharing was cancelled).';
  }
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
    if (call.pc.signalingState === 'have-local-offer') await call.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    await call.setScreen(null);
    render(chat);
    chat.el.querySelector('.screen-state').textContent = 'Your screen is not being recorded: the server refused it.';
  }
}

function render(chat, keepMessage) {
  const line = chat.el.querySelector('.screen-recording');
  const on = !!chat.video.call?.screen;
  line.querySelector('button').textContent = on ? 'Stop recording my screen' : 'Record my screen';
  line.querySelector('button').setAttribute('aria-pressed', String(on));
  const state = line.querySelector('.screen-state');
  if (on) state.textContent = 'Your screen is recorded for the visit record (the patient does not see it; opening a sensitive EMR section pauses it).';
  else if (!keepMessage || !state.textContent) state.textContent = 'This visit’s recording policy records your screen: share it when you are ready.';
}
