// A network cut in the middle of a video visit: the browser of the side cut off (CUT: the patient's or the
// nurse's, in a namespace the test cuts off for 20 s) and the other one's (in the broker's own namespace, never
// cut) run as two processes of this script, in step through files in SYNC_DIR: the test writes `cut` when it
// drops every packet of the cut side's namespace and `restored` when it lets them through again. During the cut
// the other side writes in the chat and sees the cut side reconnecting, and the cut side sees itself
// reconnecting; after it both see video again in the same visit (no second camera question, no new video
// request), the cut side reads what was written meanwhile, and each side prints how long its video took to
// come back.
// Usage: node drop-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR patient|nurse SYNC_DIR [CUT=patient]
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseReady, inbound, widgetFrame } from './lib.mjs';
import { axeCheck } from './axe.mjs';

const [url, credentialsFile, artifacts, role, sync, cutSide = 'patient'] = process.argv.slice(2);
const cutHere = role === cutSide;
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await launch(url);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `drop-${cutSide}-cut-${role}-${name}.png`), fullPage: true });
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
  // What each side sees of the cut, and the message written across it (by the side that was not cut).
  const said = cutSide === 'patient' ? 'Are you still there? The video froze.' : 'Hello? Your video froze.';
  let target, write, sawCut, readMessage, askedAgain;
  if (role === 'patient') {
    const { page: p, widget } = await patientInChat(browser, url, password);
    page = p;
    mark('patient-waiting');
    await widget.getByText('A nurse has joined').waitFor({ timeout: 60000 });
    await widget.getByRole('button', { name: 'Allow camera and microphone' }).click({ timeout: 60000 });
    await widget.getByRole('button', { name: 'Join video' }).click();
    target = () => widgetFrame(page);
    write = async () => {
      await widget.getByLabel('Your message', { exact: true }).fill(said);
      await widget.getByLabel('Your message', { exact: true }).press('Enter');
    };
    sawCut = () => (cutHere ? widget.getByText(/reconnecting|connection lost/i).first() : widget.getByText('Your nurse is reconnecting.'))
      .waitFor({ timeout: 25000 });
    readMessage = () => widget.getByText(`Nurse: ${said}`).waitFor({ timeout: 20000 });
    askedAgain = () => widget.getByRole('button', { name: 'Allow camera and microphone' }).isVisible();
  } else {
    await until('patient-waiting');
    page = await nurseReady(browser, url, password);
    await page.getByRole('button', { name: 'Accept' }).click();
    const chat = page.locator('article.chat');
    await chat.getByRole('button', { name: 'Start video…' }).click();
    await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
    target = () => page;
    write = async () => {
      await chat.getByLabel('Reply').fill(said);
      await chat.getByRole('button', { name: 'Send' }).click();
    };
    sawCut = () => page.getByText(cutHere ? /reconnecting/i : /[Pp]atient reconnecting…/).first().waitFor({ timeout: 30000 });
    readMessage = () => chat.getByText(`Patient: ${said}`).waitFor({ timeout: 20000 });
    // The same visit goes on: no new device check or request, the call not closed.
    askedAgain = async () => (await chat.getByRole('button', { name: 'Ask the patient to join video' }).isVisible())
      || (await chat.getByRole('button', { name: 'Start video…' }).isVisible())
      || !(await chat.evaluate((el) => el.classList.contains('in-call')));
  }
  if (!(await media(target, 60000))) throw new Error(`${role}: no video before the cut`);
  mark(`${role}-media`);
  console.log(`step: ${role} video flowing`);
  await until('cut');
  if (!cutHere) await write();
  await sawCut();
  console.log(`step: ${role} saw ${cutHere ? 'itself' : `the ${cutSide}`} reconnecting`);
  await shot(page, 'during-cut');
  await axeCheck(target(), `${role}: ${cutHere ? 'reconnecting' : `the ${cutSide} reconnecting`}`);
  const restored = await until('restored', 60000);
  const back = await media(target, 60000);
  if (!back) throw new Error(`${role}: no video after the cut: ${JSON.stringify(await inbound(target()))}`);
  console.log(`measured: ${role} video back ${Date.now() - restored} ms after the network returned (${cutSide} cut)`);
  if (cutHere) {
    await readMessage();
    console.log(`step: ${role} read the message written during the cut`);
  }
  if (await askedAgain()) throw new Error(`${role}: asked to start the video again (a second visit)`);
  mark(`${role}-done`);
  // Stay in the visit until the other side has seen this side's video again (closing the browser would end it).
  await until(role === 'patient' ? 'nurse-done' : 'patient-done', 60000);
  await shot(page, 'after-cut');
  console.log(`browser drop flow: ${role} passed`);
} catch (e) {
  console.error(e);
  if (page) await shot(page, 'failure').catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
