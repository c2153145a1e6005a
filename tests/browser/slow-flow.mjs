// One side of a video visit whose patient's downlink becomes too slow for video (tests/integration/slow_link.rs):
// the patient's browser in a namespace, the nurse's beside the broker, in step through files in SYNC_DIR. Once
// video flows both ways the test shapes the patient's downlink (tc tbf); the SFU's estimate of it falls under
// the floor and the patient gets audio only: the widget says so, the nurse's workspace says so, the patient's
// audio keeps coming while her video stops. The test lifts the shaping; video comes back (a keyframe asked of
// the nurse) and both sides are told.
// Usage: node slow-flow.mjs BROKER_URL CREDENTIALS_JSON SYNC_DIR ARTIFACT_DIR patient|nurse
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseReady, mediaFlowing, inbound, widgetFrame } from './lib.mjs';
import { axeCheck } from './axe.mjs';

const [url, credentialsFile, sync, artifacts, role] = process.argv.slice(2);
const password = passwords(credentialsFile);
const browser = await launch(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mark = (name, body = '') => fs.writeFileSync(path.join(sync, name), body);
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `slow-${role}-${name}.png`), fullPage: true });
async function until(name, ms = 180000) {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(path.join(sync, name))) {
    if (Date.now() > deadline) throw new Error(`${role}: no ${name} within ${ms} ms`);
    await sleep(200);
  }
}

let page = null;
try {
  if (role === 'patient') {
    let signedIn = null;
    for (let attempt = 1; !signedIn; attempt++) {
      signedIn = await patientInChat(browser, url, password).catch((e) => {
        if (attempt >= 5) throw e;
        return sleep(2000).then(() => null);
      });
    }
    const { widget } = signedIn;
    page = signedIn.page;
    mark('waiting');
    await widget.getByText('A nurse has joined').waitFor({ timeout: 120000 });
    await widget.getByRole('button', { name: 'Allow camera and microphone' }).click({ timeout: 120000 });
    await widget.getByRole('button', { name: 'Join video' }).click();
    if (!(await mediaFlowing(widgetFrame(page), 60000))) throw new Error('patient: no video before the link slowed');
    mark('patient-flowing');
    await until('shaped');
    const shaped = Date.now();
    await widget.getByText(/Your connection is too slow for video right now/).waitFor({ timeout: 90000 });
    console.log(`measured: audio only ${Date.now() - shaped} ms after the link slowed`);
    // Audio only: the nurse's voice keeps coming, her picture does not.
    const a = await inbound(widgetFrame(page));
    await sleep(5000);
    const b = await inbound(widgetFrame(page));
    console.log(`step: audio only: audio packets ${a.audioPackets} -> ${b.audioPackets}, frames ${a.framesDecoded} -> ${b.framesDecoded}`);
    if (b.audioPackets < a.audioPackets + 100) throw new Error(`patient: the audio stopped too: ${JSON.stringify({ a, b })}`);
    if (b.framesDecoded > a.framesDecoded + 5) throw new Error(`patient: video still forwarded on a link too slow for it: ${JSON.stringify({ a, b })}`);
    // A card in place of the picture, not the nurse's last frame frozen.
    await widget.getByText(/^Audio only for now: your connection is too slow for video\./).waitFor();
    if (await widget.locator('#video-remote').isVisible()) throw new Error('patient: a frozen picture beside the audio-only card');
    await shot(page, 'audio-only');
    // The link is lifted now (on audio only video is tried again after a while, and would fail on this link).
    mark('audio-only');
    await axeCheck(widgetFrame(page), 'widget: audio only on a slow link');
    await until('lifted');
    const lifted = Date.now();
    await widget.getByText('Your connection improved: video is back.').waitFor({ timeout: 90000 });
    const c = await inbound(widgetFrame(page));
    const deadline = Date.now() + 20000;
    while ((await inbound(widgetFrame(page))).framesDecoded < c.framesDecoded + 20) {
      if (Date.now() > deadline) throw new Error('patient: told video is back, but no frames');
      await sleep(250);
    }
    console.log(`measured: video back ${Date.now() - lifted} ms after the link recovered`);
    if (!(await widget.locator('#video-remote').isVisible())) throw new Error('patient: video back but the picture hidden');
    await shot(page, 'video-back');
    mark('patient-done');
    await until('nurse-done');
  } else {
    await until('waiting');
    page = await nurseReady(browser, url, password);
    await page.getByRole('button', { name: 'Accept' }).click();
    const chat = page.locator('article.chat');
    await chat.getByRole('button', { name: 'Start video…' }).click();
    await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
    if (!(await mediaFlowing(page, 60000))) throw new Error('nurse: no video before the link slowed');
    await until('shaped');
    await chat.getByText(/The patient’s connection is too slow for video/).waitFor({ timeout: 90000 });
    await shot(page, 'patient-audio-only');
    await until('lifted');
    await chat.getByText('The patient’s connection improved: they see you again.').waitFor({ timeout: 90000 });
    mark('nurse-done');
    await until('patient-done');
  }
  console.log(`browser slow flow: ${role} passed`);
} catch (e) {
  console.error(e);
  if (page) await shot(page, 'failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
