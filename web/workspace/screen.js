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
    const capture = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false });
    await call.setScreen(capture.getVideoTracks()[0], () => render(chat));
  } catch (e) {
    // Cancelled in the picker, or not allowed: the visit goes on, recorded without the screen.
    chat.el.querySelector('.screen-state').textContent = 'Your screen is not being recorded (sharing was cancelled).';
  }
  render(chat, true);
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
