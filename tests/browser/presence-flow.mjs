// Browser end-to-end test of presence, in Debian's headless Chromium: a patient who closes the tab while waiting
// is never offered to a nurse (the broker runs with a short `routing.patient_grace_seconds`); a nurse whose
// browser closes with an assigned chat loses it after `routing.stranded_grace_seconds`: the patient is told the
// chat is back in line, and the next nurse gets it with the transcript.
// Usage: node presence-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseReady } from './lib.mjs';
import { axeCheck, widgetFrame } from './axe.mjs';

const [url, credentialsFile, artifacts] = process.argv.slice(2);
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
const step = (msg) => console.log(`step: ${msg}`);

try {
  // A patient starts a chat and closes the tab while waiting.
  const ghost = await patientInChat(browser, url, password);
  await ghost.page.context().close();
  step('waiting patient closed the tab');

  // A nurse becomes ready: no offer comes for the ghost, during the grace or after it.
  const nurse = await nurseReady(browser, url, password);
  const until = Date.now() + 6000;
  while (Date.now() < until) {
    const offers = await nurse.locator('#offers li').count();
    if (offers > 0) throw new Error('the nurse was offered a patient who had closed the tab');
    await new Promise((r) => setTimeout(r, 200));
  }
  step('no offer for the patient who left');

  // A real patient comes: the nurse gets that offer, accepts, and they chat.
  const { page: patient, widget } = await patientInChat(browser, url, password, { user: 'patient2' });
  await nurse.getByRole('button', { name: 'Accept' }).click();
  await widget.getByText('A nurse has joined').waitFor();
  await widget.getByLabel('Your message').fill('I have had a fever since yesterday');
  await widget.getByRole('button', { name: 'Send' }).click();
  await nurse.getByText('Patient: I have had a fever since yesterday').waitFor();
  step('the next patient was offered and accepted');

  // The nurse's browser closes: after the grace the chat goes back to the queue and the patient is told.
  await nurse.context().close();
  await widget.getByText(/You are first in line for the next nurse/).waitFor({ timeout: 30000 });
  await shot(patient, '26-patient-requeued');
  await axeCheck(widgetFrame(patient), 'widget: back in line');
  step('the patient was told the chat is back in line');

  // Another nurse gets it, with the transcript.
  const next = await nurseReady(browser, url, password, 'nurse2');
  await next.getByRole('button', { name: 'Accept' }).click();
  await next.getByText('Patient: I have had a fever since yesterday').waitFor();
  await widget.getByText('A nurse has joined').waitFor();
  await shot(next, '27-next-nurse-has-transcript');
  step('the next nurse has the chat and its transcript');
  // The patient's presence in the chat: online, then gone when her tab closes.
  const presence = next.locator('article.chat .patient-presence');
  await presence.getByText('Patient online.').waitFor({ timeout: 15000 });
  await patient.context().close();
  await presence.getByText(/^(Patient reconnecting…|The patient has left \(no connection\)\.)$/).waitFor({ timeout: 30000 });
  step(`the nurse saw the patient online, then "${await presence.textContent()}"`);
  console.log('browser presence flow passed');
} catch (e) {
  console.error(e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-presence-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
