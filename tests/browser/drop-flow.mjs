// A network cut in the middle of a video visit: the patient's browser (in a namespace the test cuts off for
// 20 s) and the nurse's (in the broker's own namespace, never cut) run as two processes of this script, in step
// through files in SYNC_DIR: the test writes `cut` when it drops every packet of the patient's namespace and
// `restored` when it lets them through again. During the cut the nurse writes in the chat and sees the patient
// reconnecting; after it the patient must see video again in the same visit (no second camera question) and read
// what the nurse wrote, and each side prints how long its video took to come back.
// Usage: node drop-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR patient|nurse SYNC_DIR
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseReady, inbound, widgetFrame } from './lib.mjs';
import { axeCheck } from './axe.mjs';

const [url, credentialsFile, artifacts, role, sync] = process.argv.slice(2);
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await launch(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `drop-${role}-${name}.png`), fullPage: true });
const mark = (name) => fs.writeFileSync(path.join(sync, name), String(Date.now()));
async function until(name, ms = 120000) {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(path.join(sync, name))) {
    if (Date.now() > deadline) throw new Error(`${role}: no ${name} within ${ms} ms`);
    await sleep(100);
  }
  return Number(fs.readFileSync(path.join(sync, name), 'utf8'));
}
// Frames decoded and increasing (on the newest connection), or null within `ms`.
async function media(target, ms) {
  const deadline = Date.now() + ms;
  let first = null;
  while (Date.now() < deadline) {
    const s = await inbound(target()).catch(() => null);
    if (s && s.framesDecoded > 0) {
      if (!first || s.framesDecoded < first.framesDecoded) first = s;
      else if (s.framesDecoded > first.framesDecoded + 5) return s;
    }
    await sleep(200);
  }
  return null;
}

let page = null;
try {
  if (role === 'patient') {
    const { page: p, widget } = await patientInChat(browser, url, password);
    page = p;
    mark('patient-waiting');
    await widget.getByText('A nurse has joined').waitFor({ timeout: 60000 });
    await widget.getByRole('button', { name: 'Allow camera and microphone' }).click({ timeout: 60000 });
    await widget.getByRole('button', { name: 'Join video' }).click();
    if (!(await media(() => widgetFrame(page), 30000))) throw new Error('patient: no video before the cut');
    mark('patient-media');
    console.log('step: patient video flowing');
    await until('cut');
    await widget.getByText(/reconnecting|connection lost/i).first().waitFor({ timeout: 25000 });
    console.log('step: patient saw reconnecting');
    await shot(page, 'during-cut');
    await axeCheck(widgetFrame(page), 'widget: reconnecting');
    const restored = await until('restored', 60000);
    const back = await media(() => widgetFrame(page), 60000);
    if (!back) throw new Error(`patient: no video after the cut: ${JSON.stringify(await inbound(widgetFrame(page)))}`);
    console.log(`measured: patient video back ${Date.now() - restored} ms after the network returned`);
    await widget.getByText('Nurse: Are you still there? The video froze.').waitFor({ timeout: 20000 });
    console.log('step: patient read the message written during the cut');
    if (await widget.getByRole('button', { name: 'Allow camera and microphone' }).isVisible()) {
      throw new Error('patient: asked for the camera again (a second visit)');
    }
    await shot(page, 'after-cut');
    mark('patient-done');
    // Stay in the visit until the nurse has seen this side's video again (closing the browser would end it).
    await until('nurse-done', 60000);
    console.log('browser drop flow: patient passed');
  } else {
    await until('patient-waiting');
    page = await nurseReady(browser, url, password);
    await page.getByRole('button', { name: 'Accept' }).click();
    const chat = page.locator('article.chat');
    await chat.getByRole('button', { name: 'Start video…' }).click();
    await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
    if (!(await media(() => page, 60000))) throw new Error('nurse: no video before the cut');
    mark('nurse-media');
    console.log('step: nurse video flowing');
    await until('cut');
    await chat.getByLabel('Reply').fill('Are you still there? The video froze.');
    await chat.getByRole('button', { name: 'Send' }).click();
    await page.getByText(/Patient reconnecting|reconnecting/).first().waitFor({ timeout: 30000 });
    console.log('step: nurse saw the patient reconnecting');
    await shot(page, 'during-cut');
    await axeCheck(page, 'workspace: the patient reconnecting');
    const restored = await until('restored', 60000);
    const back = await media(() => page, 30000);
    if (!back) throw new Error(`nurse: no video of the patient after the cut: ${JSON.stringify(await inbound(page))}`);
    console.log(`measured: nurse video back ${Date.now() - restored} ms after the network returned`);
    await until('patient-done', 60000);
    await shot(page, 'after-cut');
    mark('nurse-done');
    console.log('browser drop flow: nurse passed');
  }
} catch (e) {
  console.error(e);
  if (page) await shot(page, 'failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
