// Browser end-to-end test of a recorded visit, in headless Chromium with fake devices inside a loopback-only
// network namespace: the patient consents to recording in the widget, the nurse opens a sensitive EMR section
// in the middle (a secure pause both see), closes it, ends the video; a compliance officer lists the recording
// and downloads it with a reason, and the file plays in Chromium's <video> with a duration within 10% of the
// visit's wall-clock length; the manifest shows the pause. A second visit declined by the patient is not
// recorded and says so.
// Usage: node recording-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, widgetFrame, staffSignIn, consoleTiles, tilesPlayed } from './lib.mjs';
import { axeCheck } from './axe.mjs';

const [url, credentialsFile, artifacts] = process.argv.slice(2);
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await launch();
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
const step = (msg) => console.log(`step: ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function decoding(target) {
  for (let i = 0; i < 120; i++) {
    const s = await inbound(target);
    if (s && s.framesDecoded > 5) return;
    await sleep(250);
  }
  throw new Error('no media');
}

try {
  const { page: patient, widget } = await patientInChat(browser, url, password);
  const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
  // Said in the chat before the video: part of the record the compliance officer reads beside it.
  await widget.getByLabel('Your message', { exact: true }).fill('The rash on my arm is spreading');
  await widget.getByLabel('Your message', { exact: true }).press('Enter');
  await chat.getByText('The rash on my arm is spreading').waitFor();

  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  // The question is worded from the recording policy: compliance officers only, kept six years.
  await widget.getByLabel(/I agree that this video visit is recorded/).check();
  const question = await widget.locator('#video-consent').innerText();
  if (!/Only the clinic's compliance officers can view the recording \(other clinical staff only in a declared emergency, which is recorded and reviewed\); it is deleted after 6 years/.test(question)) {
    throw new Error(`consent question: ${question}`);
  }
  await shot(patient, '06a-patient-consent-question');
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByRole('button', { name: 'Join video' }).click();
  const t0 = Date.now();
  await widget.getByText('● This visit is being recorded.').waitFor();
  await chat.getByText('● Recording').waitFor();
  await decoding(nurse);
  await decoding(widgetFrame(patient));
  step('recording with consent, media flowing');
  await sleep(3000);

  await chat.getByText('Identity (SSN) — sensitive, pauses recording').click();
  const pausedAt = Date.now();
  await widget.getByText('Recording paused.').waitFor();
  await chat.getByText('Recording paused').waitFor();
  step(`secure pause shown to both within ${Date.now() - pausedAt} ms`);
  await shot(nurse, '07-nurse-emr-paused');
  await shot(patient, '08-patient-recording-paused');
  await sleep(3000);
  await chat.getByText('Identity (SSN) — sensitive, pauses recording').click();
  await widget.getByText('● This visit is being recorded.').waitFor();
  await sleep(3000);
  await chat.getByRole('button', { name: 'End video' }).click();
  const wall = (Date.now() - t0) / 1000;
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  step(`visit ended after ${wall.toFixed(1)} s`);

  // The compliance officer: the console (list, play with seeking, pause on the timeline, legal hold, history)...
  const officer = await staffSignIn(browser, url, password, 'compliance', '/compliance/');
  // The alerts the broker raised are listed first (none in this visit).
  await officer.locator('#alerts-status').getByText('No alerts in the last 7 days.').waitFor();
  await officer.getByLabel('Reason for access').fill('test: quarterly review');
  await officer.getByRole('button', { name: 'Show recordings' }).click();
  await officer.getByText('1 recording(s).').waitFor();
  await officer.getByRole('button', { name: /Open recording REC-\w{4}-\w{4}-\w{4} of/ }).click();
  const band = officer.getByRole('button', { name: /^Recording paused: EMR section opened: identity, .* go there$/ });
  await band.waitFor();
  const rec0 = (await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=' + encodeURIComponent('test: the manifest'))).json())).recordings[0];
  await officer.getByText(/Paused .* EMR section opened: identity/).waitFor();
  await officer.locator('#facts').getByText('Nora Demo').waitFor();
  // The list names the visit under the reference.
  await officer.locator('#recordings').getByText(rec0.visit_id).waitFor();
  await officer.locator('#facts').getByText('patient, nurse').waitFor();
  // Every participant on one clock: the patient's and the nurse's pictures decode, each has sound, in step.
  const tiles = await consoleTiles(officer);
  console.log(`console tiles: ${JSON.stringify(tiles)}`);
  tilesPlayed(tiles);
  const named = tiles.map((t) => t.caption).join(' | ');
  if (named !== 'Patient | Nurse: Nora Demo') throw new Error(`tiles: ${named}`);
  step(`console: ${tiles.length} participants played in step, each with picture and sound`);
  // A click on the pause band seeks into it and the card says why; Enter on the band does the same.
  // Where the patient's picture is once it has sought there and shows a frame (not the time it was asked for).
  const inBand = async () => officer.evaluate(async () => {
    const v = document.querySelector('#tiles video');
    for (let i = 0; i < 50 && (v.seeking || v.readyState < 2); i++) await new Promise((r) => setTimeout(r, 100));
    const card = document.getElementById('stage-card');
    return { t: v.currentTime, ready: !v.seeking && v.readyState >= 2, card: card.hidden ? null : card.textContent };
  });
  const pause = rec0.manifest.pauses[0];
  const [from, to] = [(pause.start_ms - rec0.manifest.started_ms) / 1000, (pause.end_ms - rec0.manifest.started_ms) / 1000];
  await band.click();
  await officer.locator('#stage-card').getByText('Recording paused: EMR section opened: identity').waitFor();
  const clicked = await inBand();
  if (!(clicked.ready && clicked.t >= from && clicked.t < to)) throw new Error(`the band click went to ${JSON.stringify(clicked)}, not into ${from}–${to}`);
  await shot(officer, '09c-compliance-paused-card');
  await officer.getByLabel('Position in the recording (seconds)').fill('0');
  await officer.locator('#stage-card').waitFor({ state: 'hidden' });
  await band.focus();
  await officer.keyboard.press('Enter');
  await officer.locator('#stage-card').waitFor();
  const keyed = await inBand();
  if (!(keyed.ready && keyed.t >= from && keyed.t < to)) throw new Error(`Enter on the band went to ${JSON.stringify(keyed)}`);
  // Played into the pause from a second before it: the card comes up on its own, and goes after it.
  await officer.getByLabel('Position in the recording (seconds)').fill(String(Math.max(0, from - 1).toFixed(1)));
  await officer.locator('#stage-card').waitFor({ state: 'hidden' });
  await officer.locator('#play').click();
  await officer.locator('#stage-card').waitFor({ timeout: 5000 });
  const entered = await inBand();
  await officer.locator('#play').click();
  if (!(entered.t >= from - 0.3 && entered.t < to)) throw new Error(`the card showed at ${entered.t}, outside ${from}–${to}`);
  step(`pause band: click and Enter jump to ${clicked.t.toFixed(2)}/${keyed.t.toFixed(2)} s inside ${from.toFixed(1)}–${to.toFixed(1)} s; the card shows while playing through it`);
  await officer.getByRole('button', { name: 'Set legal hold' }).click();
  await officer.getByRole('button', { name: 'Release legal hold' }).waitFor();
  await officer.getByRole('cell', { name: 'recording.legal_hold.set' }).waitFor();
  await officer.getByRole('cell', { name: 'recording.stream' }).first().waitFor();
  // Who, by name: the officer herself, and the broker's recorder for its own events (not "anonymous").
  await officer.getByRole('cell', { name: /^Cora Demo — / }).first().waitFor();
  await officer.getByRole('cell', { name: 'system (recorder) — system:recorder' }).first().waitFor();
  if (await officer.getByRole('cell', { name: 'anonymous', exact: true }).count()) throw new Error('an anonymous actor in the access history');
  await officer.locator('#wrap-up').getByText('No wrap-up was recorded for this chat.').waitFor();
  // The chat's transcript, on request, as an access of its own.
  if (await officer.locator('#transcript li').count()) throw new Error('the transcript was read before it was asked for');
  await officer.getByRole('button', { name: 'Read the chat transcript' }).click();
  await officer.getByRole('list', { name: 'Chat transcript' }).getByText('The rash on my arm is spreading').waitFor();
  await officer.getByRole('list', { name: 'Chat transcript' }).getByText(/^Patient, /).first().waitFor();
  await officer.getByRole('cell', { name: 'conversation.transcript.view' }).first().waitFor();
  // The tables fit the page: nothing runs off its right edge.
  const overflow = await officer.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 0) throw new Error(`the console is ${overflow} px wider than the window`);
  await shot(officer, '09-compliance-console');
  await axeCheck(officer, 'compliance console: a recording');
  step('console: legal hold set, history shown by name, transcript read and audited');

  // ...and a download that plays in a plain <video>, with the visit's duration.
  const rec = (await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=' + encodeURIComponent('test: download'))).json())).recordings[0];
  if (rec.manifest.pauses.length !== 1) throw new Error(`expected one pause: ${JSON.stringify(rec.manifest)}`);
  const played = await officer.evaluate(async (id) => {
    const resp = await fetch(`/api/v1/recordings/${id}/download?reason=${encodeURIComponent('test: playback check')}`);
    const blob = await resp.blob();
    const video = document.createElement('video');
    video.muted = true;
    document.body.appendChild(video);
    video.src = URL.createObjectURL(blob);
    await new Promise((ok, fail) => { video.onloadedmetadata = ok; video.onerror = () => fail(new Error(`media error ${video.error && video.error.code}`)); });
    await video.play();
    await new Promise((r) => setTimeout(r, 1500));
    return { duration: video.duration, currentTime: video.currentTime, width: video.videoWidth, bytes: blob.size, type: resp.headers.get('content-type') };
  }, rec.id);
  console.log(`downloaded ${played.bytes} bytes (${played.type}), duration ${played.duration.toFixed(2)} s, wall clock ${wall.toFixed(2)} s, ${played.width} px wide, played to ${played.currentTime.toFixed(2)} s`);
  if (!(Math.abs(played.duration - wall) <= wall * 0.1)) throw new Error('duration not within 10% of the visit');
  if (!(played.currentTime > 0.5 && played.width > 0)) throw new Error('the recording did not play');
  step('compliance officer downloaded and played the recording');

  // A second visit, declined: not recorded, and the widget says so.
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByRole('button', { name: 'Join video' }).click();
  await widget.getByText('This visit is not being recorded.').waitFor();
  await chat.getByText('Not recorded (the patient declined)').waitFor();
  await chat.getByRole('button', { name: 'End video' }).click();
  const after = await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=recheck')).json());
  if (after.recordings.length !== 1) throw new Error(`the declined visit was recorded: ${after.recordings.length}`);
  step('declined consent: no recording');
  // The nurse ends the chat and wraps it up: the compliance officer reads the wrap-up beside the recording.
  await chat.getByRole('button', { name: 'End chat' }).click();
  await chat.getByLabel('Disposition').selectOption('Advice given');
  await chat.getByLabel('Notes (optional)').fill('Rash reviewed on video; antihistamine advised.');
  await chat.getByRole('button', { name: 'Save wrap-up' }).click();
  await chat.getByText('Wrap-up saved.').waitFor();
  await officer.getByRole('button', { name: /Open recording REC-/ }).click();
  await officer.locator('#wrap-up').getByText('Advice given').waitFor();
  await officer.locator('#wrap-up').getByText('Rash reviewed on video; antihistamine advised.').waitFor();
  await officer.getByRole('cell', { name: 'conversation.wrap_up.view' }).first().waitFor();
  await shot(officer, '09b-compliance-wrap-up');
  await axeCheck(officer, 'compliance console: wrap-up');
  step('the wrap-up is read beside the recording, audited');

  // The console's consent report: both visits, one recorded with consent, none recorded without.
  await officer.getByLabel('Report', { exact: true }).selectOption('consent');
  await officer.getByRole('button', { name: 'Run report' }).click();
  await officer.getByText('2 row(s).').waitFor();
  const summary = await officer.locator('#report-summary').innerText();
  if (!/recordings without consent\s+0/.test(summary) || !/with recording consent\s+1/.test(summary)) {
    throw new Error(`consent report summary: ${summary}`);
  }
  await officer.getByRole('cell', { name: 'disabled_by_consent' }).waitFor();
  const csv = await officer.evaluate(async () => (await fetch(document.getElementById('report-csv').href)).text());
  if (!csv.includes('# chain_head: seq=') || !csv.includes('disabled_by_consent')) throw new Error(`CSV: ${csv}`);
  await shot(officer, '10-consent-report');
  step('consent report in the console: 2 visits, none recorded without consent, CSV at the same head');

  // Scheduled evidence: yesterday's access report, made without anyone asking, verified by the broker.
  const scheduled = officer.locator('#scheduled');
  await scheduled.getByText('Access audit every day').waitFor();
  await scheduled.getByRole('button', { name: /^Verify Access audit/ }).click();
  await scheduled.getByText(/^Valid: signed by key [0-9a-f]{16}; audit trail head \d+ is in the trail\.$/).waitFor();
  const file = await officer.evaluate(async () => (await fetch(document.querySelector('#scheduled-rows a').href)).json());
  if (file.signed?.report?.report !== 'access' || !file.signature?.value) throw new Error(`signed file: ${JSON.stringify(file).slice(0, 300)}`);
  await scheduled.scrollIntoViewIfNeeded();
  await shot(officer, '10b-scheduled-report-verified');
  await axeCheck(officer, 'compliance console: scheduled reports');
  step('scheduled report listed, verified in the console, its signed file downloaded');
  console.log('browser recording flow passed');
} catch (e) {
  console.error(e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-rec-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
