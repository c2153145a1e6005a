// Browser end-to-end test of a visit that outlives its servers: three brokers behind HAProxy, Chromium for the
// patient and the nurse through the balancer, a recorded visit. The test then moves the visit EVENTS times (a
// comma-separated list: `killed` is kill -9 of the visit's host, `drained` a SIGTERM drain of it, restarted
// afterwards: a rolling restart). Before each, once both decode each other's video, the script writes `live-N` in
// MARKER_DIR; the test acts and writes `event-N` with the time it acted; both browsers must decode video again on
// a new peer connection (no second consent question), and a chat message sent after each move must reach the
// nurse once. The interruptions are printed as `measured:` lines.
// Usage: node failover-flow.mjs BALANCER_URL CREDENTIALS_JSON ARTIFACT_DIR MARKER_DIR EVENTS
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, widgetFrame } from './lib.mjs';

const [url, credentialsFile, artifacts, markers, eventList] = process.argv.slice(2);
const events = eventList.split(',');
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await launch();
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const step = (msg) => console.log(`step: ${msg}`);
const mark = (name) => fs.writeFileSync(path.join(markers, name), String(Date.now()));

async function waitMarker(name, ms) {
  const deadline = Date.now() + ms;
  while (!fs.existsSync(path.join(markers, name))) {
    if (Date.now() > deadline) throw new Error(`no ${name} marker`);
    await sleep(100);
  }
  return Number(fs.readFileSync(path.join(markers, name), 'utf8'));
}

/** Waits until `target`'s newest open peer connection (not `old`) decodes frames; returns it. */
async function decodesAgain(name, target, oldCount, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const s = await inbound(target).catch(() => null);
    if (s && s.state === 'connected' && s.framesDecoded > 5 && (await target.evaluate(() => window.__pcs.length)) > oldCount) {
      return s;
    }
    await sleep(100);
  }
  throw new Error(`${name}: no video on a new connection: ${JSON.stringify(await inbound(target).catch(() => null))}`);
}

try {
  const { page: patient, widget } = await patientInChat(browser, url, password);
  const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  // The patient agrees to the recording: it must go on across both moves without being asked again.
  await widget.locator('#video-consent-box').check();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByRole('button', { name: 'Join video' }).click();
  const frame = () => widgetFrame(patient);
  await decodesAgain('patient', frame(), 0, 30000);
  await decodesAgain('nurse', nurse, 0, 30000);
  step('video both ways');

  const said = [];
  for (const [i, event] of events.entries()) {
    const pcs = [await frame().evaluate(() => window.__pcs.length), await nurse.evaluate(() => window.__pcs.length)];
    mark(`live-${i}`);
    const at = await waitMarker(`event-${i}`, 180000);
    await decodesAgain('patient', frame(), pcs[0], 60000);
    await decodesAgain('nurse', nurse, pcs[1], 60000);
    console.log(`measured: host ${event} (move ${i + 1}): video again on both sides ${((Date.now() - at) / 1000).toFixed(1)} s later`);
    if (await widget.getByRole('button', { name: 'Allow camera and microphone' }).isVisible()) {
      throw new Error('the patient was asked for the camera again');
    }
    await widget.getByText('● This visit is being recorded.').waitFor();
    // The chat goes on through the moves: each message reaches the nurse once.
    const text = `Still here after move ${i + 1}`;
    said.push(text);
    await widget.getByLabel('Your message').fill(text);
    await widget.getByRole('button', { name: 'Send' }).click();
    await chat.getByText(`Patient: ${text}`).waitFor({ timeout: 30000 });
    await shot(patient, `28-patient-after-move-${i + 1}`);
    await shot(nurse, `29-nurse-after-move-${i + 1}`);
    step(`video and chat back after the host was ${event}`);
  }
  for (const text of said) {
    const n = await chat.getByText(`Patient: ${text}`).count();
    if (n !== 1) throw new Error(`"${text}" shown ${n} times to the nurse`);
  }
  await chat.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  console.log('browser failover flow passed');
} catch (e) {
  console.error(e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-failover-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
