// A recorded video visit handed on in Chromium, warm then cold. Nora, in the call, asks Nico to take over
// ("Transfer…", Ask); Nico accepts; Nora's call closes and her panel folds; the patient reads that Nico takes
// over and stays in the call; Nico rejoins the visit in progress from the chat ("Start video…", "Join video"):
// the patient decodes him, captioned "Nurse". Then Nico sends it to the triage queue: the patient is told the
// next nurse will join; Nora, ready again, accepts it from the queue and rejoins the same visit. One recording
// throughout; its manifest (two nurses by staff id) is written to the artifacts for the Rust test.
// Usage: node visit-transfer-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { axeCheck } from './axe.mjs';
import { captions, flow, nurseReady, recordedVisit, seesOthers, staffSignIn, widgetFrame } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The nurse `page` rejoins the visit in progress from the chat panel `chat`. */
async function rejoin(page, chat) {
  await chat.getByText('Video in progress: use “Start video…” to rejoin.').waitFor();
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Join video' }).click();
  await seesOthers(page, 'the nurse taking over', 1);
}

await flow('visit-transfer', 'browser visit transfer flow passed', async ({ url, password, browser, shot, step }) => {
  const [, , artifacts] = process.argv.slice(2);
  const { patient, widget, nurse: nora, chat } = await recordedVisit(browser, url, password);
  const nico = await nurseReady(browser, url, password, 'nurse2');
  step('patient and Nora in a recorded visit; Nico ready');
  await sleep(1500);

  // Warm: Nora asks Nico with the video on.
  await chat.getByRole('button', { name: 'Transfer…' }).click();
  const colleague = chat.getByLabel('Or ask a colleague to take over');
  await colleague.locator('option', { hasText: 'Nico Demo' }).waitFor({ state: 'attached' });
  await chat.getByRole('button', { name: 'Ask', exact: true }).click();
  await nico.locator('#offers li', { hasText: 'Transfer from Nora Demo' }).getByRole('button', { name: 'Accept' }).click();
  await chat.getByText('Transferred to Nico Demo', { exact: false }).waitFor();
  // Her call closes (the panel folds like any transferred chat).
  await chat.locator('video.remote').waitFor({ state: 'hidden' });
  await widget.getByText('Nico Demo is taking over your visit and will join you shortly. Stay here.').waitFor();
  await shot(patient, '90-patient-told-nico-takes-over');
  await axeCheck(widgetFrame(patient), 'widget: visit handed over');
  const taken = nico.locator('article.chat');
  await shot(nico, '91-colleague-sees-visit-in-progress');
  await rejoin(nico, taken);
  await seesOthers(widgetFrame(patient), 'the patient', 1);
  const seen = await captions(widgetFrame(patient));
  if (!seen.includes('Nurse')) throw new Error(`the patient's picture is captioned ${JSON.stringify(seen)}`);
  await shot(nico, '92-colleague-in-the-visit');
  await shot(patient, '93-patient-with-the-colleague');
  await axeCheck(nico, 'workspace: visit taken over');
  step('warm: Nico took the visit over and the patient sees him');
  await sleep(1500);

  // Cold: Nico sends it to triage; Nora, ready again, takes it from the queue.
  await nora.getByRole('button', { name: 'Ready', exact: true }).click();
  await nora.locator('#presence', { hasText: 'ready' }).waitFor();
  await taken.getByRole('button', { name: 'Transfer…' }).click();
  await taken.getByLabel('Transfer to the queue').selectOption('triage');
  await taken.getByRole('button', { name: 'Transfer', exact: true }).click();
  // Nico steps away, so the chat goes to Nora.
  await nico.getByRole('button', { name: 'Away' }).click();
  await nico.locator('#presence', { hasText: 'away' }).waitFor();
  await widget.getByText('Your nurse passed your visit on. Stay here: the next nurse will join you shortly.').waitFor();
  await shot(patient, '94-patient-waits-for-the-next-nurse');
  // Offers last 2 s in this broker: one that expired as it was clicked is offered again.
  const takingOver = widget.getByText('Nora Demo is taking over your visit and will join you shortly. Stay here.');
  for (let k = 0; k < 10 && !(await takingOver.isVisible()); k++) {
    await nora.locator('#offers li', { hasText: '(triage)' }).getByRole('button', { name: 'Accept' }).click({ timeout: 5000 }).catch(() => {});
    await takingOver.waitFor({ timeout: 4000 }).catch(() => {});
  }
  await takingOver.waitFor();
  const back = nora.locator('article.chat').last();
  await rejoin(nora, back);
  await seesOthers(widgetFrame(patient), 'the patient', 1);
  step('cold: back to the queue, Nora took it and rejoined the same visit');
  await sleep(1500);
  await back.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();

  const officer = await staffSignIn(browser, url, password, 'compliance', '/compliance/');
  let list;
  for (let k = 0; k < 40; k++) {
    list = await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=' + encodeURIComponent('test: transfer manifest'))).json());
    if (list.recordings.some((r) => r.manifest?.ended_ms)) break;
    await sleep(250);
  }
  fs.writeFileSync(path.join(artifacts, 'transfer-recordings.json'), JSON.stringify(list.recordings));
  step(`recordings: ${list.recordings.length}`);
});
