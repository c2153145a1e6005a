// Browser end-to-end test of a visit that outlives its server: three brokers behind HAProxy, Chromium for the
// patient and the nurse through the balancer. Once both decode each other's video the script writes `live` in
// MARKER_DIR; the test kills the visit's host (kill -9) and writes `killed`; both browsers must decode video again
// on a new peer connection (another node adopted the visit), without a second consent question. The script writes
// `recovered`; the test drains the new host (SIGTERM) and writes `drained`; video must come back once more. The
// interruptions are printed as `measured:` lines.
// Usage: node failover-flow.mjs BALANCER_URL CREDENTIALS_JSON ARTIFACT_DIR MARKER_DIR
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, widgetFrame } from './lib.mjs';

const [url, credentialsFile, artifacts, markers] = process.argv.slice(2);
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

  for (const [event, done] of [['killed', 'recovered'], ['drained', 'done']]) {
    const pcs = [await frame().evaluate(() => window.__pcs.length), await nurse.evaluate(() => window.__pcs.length)];
    mark(event === 'killed' ? 'live' : 'recovered');
    const at = await waitMarker(event, 120000);
    await decodesAgain('patient', frame(), pcs[0], 60000);
    await decodesAgain('nurse', nurse, pcs[1], 60000);
    console.log(`measured: ${event === 'killed' ? 'host killed' : 'host drained'}: video again on both sides ${((Date.now() - at) / 1000).toFixed(1)} s later`);
    if (await widget.getByRole('button', { name: 'Allow camera and microphone' }).isVisible()) {
      throw new Error('the patient was asked for the camera again');
    }
    await widget.getByText('● This visit is being recorded.').waitFor();
    await shot(patient, `28-patient-after-${event}`);
    await shot(nurse, `29-nurse-after-${event}`);
    step(`video back after the host was ${event}`);
    if (done === 'done') mark('done');
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
