// The nurse's screen in Chromium, under a recording policy that records it: the nurse's workspace asks her to
// share it once the visit is recorded; she shares the (fake) screen for the recording; the patient still receives
// one video, the nurse's camera; opening a sensitive EMR section pauses the recording, screen included; then she
// shows her screen to the patient (the SFU's own offer adds it to the patient's connection), who sees it under
// her camera, and stops showing it; she stops recording it, then ends the video. The compliance officer's manifest lists the screen's intervals, and the
// recording file is written to the artifacts for the Rust test to read track by track.
// Usage: node screen-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { axeCheck } from './axe.mjs';
import { flow, inbound, recordedVisit, staffSignIn, widgetFrame } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function videoTracksDecoding(target) {
  for (let i = 0; i < 120; i++) {
    const s = await inbound(target);
    if (s && s.framesDecoded > 5) return;
    await sleep(250);
  }
  throw new Error('no media');
}

await flow('screen', 'browser screen recording flow passed', async ({ url, password, browser, shot, step }) => {
  const { patient, widget, nurse, chat } = await recordedVisit(browser, url, password);
  await videoTracksDecoding(nurse);
  await videoTracksDecoding(widgetFrame(patient));
  await chat.getByText('This visit’s recording policy records your screen: share it when you are ready.').waitFor();
  await shot(nurse, '60-nurse-asked-to-record-screen');
  await axeCheck(nurse, 'workspace: screen recording asked');

  await chat.getByRole('button', { name: 'Record my screen' }).click();
  await chat.getByText(/Your screen is recorded for the visit record/).waitFor();
  const sending = await nurse.evaluate(() => window.__pcs.filter((p) => p.connectionState !== 'closed').at(-1)
    .getSenders().filter((s) => s.track?.kind === 'video').map((s) => s.track.label));
  if (!sending.some((l) => /^(screen|window|web-contents)/.test(l))) throw new Error(`the nurse sends no screen: ${sending}`);
  await shot(nurse, '61-nurse-screen-recorded');
  await axeCheck(nurse, 'workspace: screen recorded');
  step('the nurse shares her screen for the recording');
  await sleep(3000);

  await chat.getByText('Identity (SSN) — sensitive, pauses recording').click();
  await chat.getByText('Recording paused').waitFor();
  await sleep(3000);
  await chat.getByText('Identity (SSN) — sensitive, pauses recording').click();
  await chat.getByText('● Recording').waitFor();
  await sleep(3000);
  step('paused and resumed while the screen was shared');

  // The patient receives one video (the nurse's camera), never the screen.
  const videos = await widgetFrame(patient).evaluate(async () => {
    const pc = window.__pcs.filter((p) => p.connectionState !== 'closed').at(-1);
    const stats = await pc.getStats();
    const seen = [];
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video' && s.packetsReceived > 0) seen.push([s.frameWidth, s.frameHeight]); });
    return seen;
  });
  // One video, and it is the camera (4:3), not the 16:9 screen on the same track.
  if (videos.length !== 1 || !(videos[0][0] / videos[0][1] < 1.5)) throw new Error(`the patient receives ${JSON.stringify(videos)}`);

  // She shows her screen to the patient: the SFU offers it to the patient's connection, which answers.
  await chat.getByRole('button', { name: 'Share my screen' }).click();
  await chat.getByText('The patient sees your screen, and it is recorded', { exact: false }).waitFor();
  await widget.getByText('Your nurse is showing you their screen').waitFor();
  const shown = await widgetFrame(patient).evaluate(async () => {
    const v = document.getElementById('video-screen');
    for (let i = 0; i < 80 && !(v.videoWidth > 0); i++) await new Promise((r) => setTimeout(r, 250));
    const camera = document.getElementById('video-remote');
    return { screen: [v.videoWidth, v.videoHeight], camera: [camera.videoWidth, camera.videoHeight] };
  });
  if (!(shown.screen[0] / shown.screen[1] > 1.5)) throw new Error(`the patient does not see the screen: ${JSON.stringify(shown)}`);
  if (!(shown.camera[0] / shown.camera[1] < 1.5)) throw new Error(`the patient's main picture is not the camera: ${JSON.stringify(shown)}`);
  await shot(patient, '62-patient-sees-nurse-screen');
  await shot(nurse, '63-nurse-sharing-screen');
  await axeCheck(widgetFrame(patient), 'widget: the nurse shares her screen');
  await axeCheck(nurse, 'workspace: sharing her screen');
  step(`the patient sees the nurse's screen (${shown.screen.join('x')}) beside her camera (${shown.camera.join('x')})`);
  await chat.getByRole('button', { name: 'Stop sharing my screen' }).click();
  await widget.getByText('Your nurse is showing you their screen').waitFor({ state: 'hidden' });
  step('she stopped sharing: the patient no longer sees it, the recording still has it');

  await chat.getByRole('button', { name: 'Stop recording my screen' }).click();
  await chat.getByRole('button', { name: 'Record my screen' }).waitFor();
  await sleep(2000);
  await chat.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  step('screen sharing stopped, the video ended');

  const officer = await staffSignIn(browser, url, password, 'compliance', '/compliance/');
  let rec;
  for (let i = 0; i < 40 && !rec; i++) {
    const list = await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=' + encodeURIComponent('test: screen recording'))).json());
    rec = list.recordings.find((r) => r.manifest?.ended_ms);
    if (!rec) await sleep(250);
  }
  if (!rec) throw new Error('no finished recording');
  const file = await officer.evaluate(async (id) => {
    const resp = await fetch(`/api/v1/recordings/${id}/download?reason=${encodeURIComponent('test: screen track check')}`);
    const bytes = new Uint8Array(await resp.arrayBuffer());
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }, rec.id);
  const [, , artifacts] = process.argv.slice(2);
  fs.writeFileSync(path.join(artifacts, 'screen-recording.webm'), Buffer.from(file, 'base64'));
  fs.writeFileSync(path.join(artifacts, 'screen-manifest.json'), JSON.stringify(rec.manifest));
  // The console gives the nurse's screen a tile of its own beside the patient's and the nurse's.
  await officer.getByLabel('Reason for access').fill('test: screen review');
  await officer.getByRole('button', { name: 'Show recordings' }).click();
  await officer.getByRole('button', { name: /Open recording REC-/ }).click();
  await officer.locator('#tiles figure').nth(2).waitFor();
  const named = (await officer.locator('#tiles figcaption').allInnerTexts()).join(' | ');
  if (named !== "Patient | Nurse: Nora Demo | Nurse's screen") throw new Error(`tiles: ${named}`);
  await officer.getByRole('link', { name: "Nurse's screen" }).waitFor();
  step(`console tiles: ${named}`);
  step(`manifest: ${JSON.stringify({ pauses: rec.manifest.pauses.length, screen: rec.manifest.screen })}`);
});
