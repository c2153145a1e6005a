// Browser end-to-end test of the video prompt and the call's controls, in Debian's headless Chromium with fake
// devices. The patient's browser blocks the camera (Chromium's own permission decision: only the microphone is
// granted). The nurse asks for video and the patient answers after more than 60 s (the prompt waits 120 s); the
// camera is refused, so the widget offers audio only and the patient joins with it: both hear each other, the
// nurse is told why it is audio only. Mute and camera-off reach the other side; the nurse turns video back on
// (her picture reaches the patient again through the SFU, the patient's camera is still blocked and shown as off).
// Usage: node visit-controls.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, widgetFrame } from './lib.mjs';
import { axeCheck } from './axe.mjs';

const [url, credentialsFile, artifacts] = process.argv.slice(2);
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });

const staffBrowser = await launch();
const patientBrowser = await launch(undefined, { askPermissions: false });
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
const step = (msg) => console.log(`step: ${msg}`);

/** Waits until `target` has received more of `what` (audioPackets, framesDecoded) than `from`, by `more`. */
async function grows(name, target, what, from = 0, more = 20) {
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const s = await inbound(target);
    if (s && s[what] > from + more) return s;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${name}: ${what} did not grow: ${JSON.stringify(await inbound(target))}`);
}

try {
  const { page: patient, widget } = await patientInChat(patientBrowser, url, password, {
    contextOptions: { permissions: ['microphone'] },
  });
  const { page: nurse, chat } = await nurseAccepting(staffBrowser, url, password, widget);
  step('chat accepted');

  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).waitFor();
  // A patient who needs a minute to find the permission: the question is still there after 60 s.
  await chat.getByText(/Waiting for the patient to allow camera and microphone… 1:0\d/).waitFor({ timeout: 75000 });
  await shot(nurse, '20-nurse-waiting-a-minute');
  step('the prompt is still open after a minute');

  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByText(/Your camera is not available/).waitFor();
  await shot(patient, '21-patient-camera-blocked');
  await axeCheck(widgetFrame(patient), 'widget: camera blocked');
  await widget.getByRole('button', { name: 'Join with audio only' }).click();
  step('camera refused by the browser; patient joins with audio only');

  await chat.getByText(/Audio only: the patient's camera is blocked or missing/).waitFor();
  await widget.getByText(/Audio only: you and your nurse hear each other/).waitFor();
  const heard = await grows('patient hears the nurse', widgetFrame(patient), 'audioPackets');
  await grows('nurse hears the patient', nurse, 'audioPackets');
  if (heard.framesDecoded > 0) throw new Error(`video decoded during an audio-only visit: ${JSON.stringify(heard)}`);
  await chat.getByText(/Video: you connected, patient connected/).waitFor();
  await shot(patient, '22-patient-audio-only');
  await shot(nurse, '23-nurse-audio-only');
  await axeCheck(widgetFrame(patient), 'widget: audio only');
  await axeCheck(nurse, 'workspace: audio only');
  step('audio both ways, no video');

  await widget.getByRole('button', { name: 'Mute', exact: true }).click();
  await chat.getByText('The patient muted their microphone.').waitFor();
  await widget.getByRole('button', { name: 'Unmute' }).click();
  await nurse.waitForFunction(() => !document.querySelector('article.chat .patient-media').textContent.includes('muted'));
  step('the nurse sees the patient mute and unmute');

  // The nurse turns video back on: her camera reaches the patient again; the patient's stays blocked.
  const before = (await inbound(widgetFrame(patient))).framesDecoded;
  await chat.getByRole('button', { name: 'Turn video back on' }).click();
  await widget.getByText(/Your nurse turned video back on\./).waitFor();
  await grows('patient sees the nurse again', widgetFrame(patient), 'framesDecoded', before, 10);
  await chat.getByText("The patient's camera is off.").waitFor();
  await widget.getByText(/Your camera could not be opened/).waitFor();
  step('video back: the nurse is seen, the patient\'s blocked camera is shown as off');

  await chat.getByRole('button', { name: 'Turn camera off' }).click();
  await widget.getByText("Your nurse's camera is off.").waitFor();
  await chat.getByRole('button', { name: 'Mute', exact: true }).click();
  await widget.getByText('Your nurse muted their microphone.').waitFor();
  await shot(patient, '24-patient-sees-nurse-muted-camera-off');
  await shot(nurse, '25-nurse-muted-camera-off');
  await axeCheck(widgetFrame(patient), 'widget: the nurse muted, camera off');
  await axeCheck(nurse, 'workspace: muted, camera off');
  step('the patient sees the nurse mute and turn her camera off');

  await chat.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  console.log('browser visit controls passed');
} catch (e) {
  console.error(e);
  for (const b of [staffBrowser, patientBrowser]) {
    for (const p of b.contexts().flatMap((c) => c.pages())) await shot(p, `failure-controls-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  }
  process.exitCode = 1;
} finally {
  await staffBrowser.close();
  await patientBrowser.close();
}
