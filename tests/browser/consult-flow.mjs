// A staff interpreter joins a recorded visit in Chromium, and a physician declines. The interpreter, signed in,
// waits on /consult/; the nurse, in the call, opens "Ask an interpreter or physician…", picks her and asks; the
// patient sees her asked; the interpreter reads who asks, joins, agrees to the recording and is in the call:
// patient, nurse and interpreter each decode the two others, and every picture is captioned (the interpreter's
// with her role). She leaves and her page waits for the next request. The nurse asks the physician, who
// declines: the nurse is told. The recording's manifest is written to the artifacts for the Rust test.
// Usage: node consult-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { axeCheck } from './axe.mjs';
import { captions, flow, recordedVisit, seesOthers, staffSignIn, widgetFrame } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await flow('consult', 'browser consult flow passed', async ({ url, password, browser, shot, step }) => {
  const [, , artifacts] = process.argv.slice(2);
  const { patient, widget, nurse, chat } = await recordedVisit(browser, url, password);
  step('patient and nurse in a recorded visit');

  const ines = await staffSignIn(browser, url, password, 'interpreter', '/consult/', { viewport: { width: 800, height: 700 } });
  await ines.getByText('When a nurse asks you to join a video visit, it appears here.', { exact: false }).waitFor();
  await shot(ines, '80-interpreter-waiting');
  await axeCheck(ines, 'consult: waiting');

  await chat.getByRole('button', { name: 'Ask an interpreter or physician…' }).click();
  const pick = chat.getByLabel('Interpreter or physician');
  await pick.locator('option', { hasText: 'Ines Demo — interpreter, spanish' }).waitFor({ state: 'attached' });
  await shot(nurse, '81-nurse-picks-interpreter');
  await axeCheck(nurse, 'workspace: asking an interpreter');
  await pick.selectOption({ label: 'Ines Demo — interpreter, spanish' });
  await chat.getByRole('button', { name: 'Ask to join' }).click();
  await chat.getByText('Ines Demo (interpreter): asked, waiting for their answer').waitFor();
  await widget.getByText('Ines Demo (interpreter): asked to join').waitFor();
  step('the nurse asked the interpreter; nurse and patient see her asked');

  await ines.getByText('Nora Demo asks you to join a video visit as the interpreter.').waitFor();
  await shot(ines, '82-interpreter-asked');
  await axeCheck(ines, 'consult: asked');
  await ines.getByRole('button', { name: 'Join the visit' }).click();
  await ines.getByText('You accepted. Your browser will ask to use your camera and microphone.').waitFor();
  await ines.getByLabel(/I agree that this video visit is recorded/).check();
  await ines.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await ines.getByRole('button', { name: 'Join video' }).click();
  const i = await seesOthers(ines, 'the interpreter', 2);
  const n = await seesOthers(nurse, 'the nurse', 2);
  const p = await seesOthers(widgetFrame(patient), 'the patient', 2);
  step(`three in the visit, each decoding the two others: interpreter ${JSON.stringify(i)}, nurse ${JSON.stringify(n)}, patient ${JSON.stringify(p)}`);
  const expected = {
    nurse: ['Ines Demo (interpreter)', 'Patient'],
    patient: ['Ines Demo (interpreter)', 'Nurse'],
    interpreter: ['Nurse', 'Patient'],
  };
  for (const [who, target] of [['nurse', nurse], ['patient', widgetFrame(patient)], ['interpreter', ines]]) {
    const got = await captions(target);
    if (JSON.stringify(got) !== JSON.stringify(expected[who])) throw new Error(`the ${who}'s pictures are captioned ${JSON.stringify(got)}`);
  }
  await chat.getByText('Ines Demo (interpreter): in the call').waitFor();
  await widget.getByText('Ines Demo (interpreter): in the call').waitFor();
  await shot(ines, '83-interpreter-in-call');
  await shot(patient, '84-patient-with-interpreter');
  await shot(nurse, '85-nurse-with-interpreter');
  await axeCheck(ines, 'consult: in the call');
  await axeCheck(nurse, 'workspace: with an interpreter');
  step('every picture is captioned, the interpreter with her role');
  await sleep(2000);

  await ines.getByRole('button', { name: 'Leave the visit' }).click();
  await ines.getByText('Your part in the visit has ended.', { exact: false }).waitFor();
  await chat.locator('.tiles figure', { hasText: 'Ines Demo' }).waitFor({ state: 'hidden' });
  await shot(ines, '86-interpreter-left');
  step('the interpreter left; her page waits for the next request');

  const paul = await staffSignIn(browser, url, password, 'physician', '/consult/');
  await paul.getByText('When a nurse asks you to join a video visit, it appears here.', { exact: false }).waitFor();
  await chat.getByRole('button', { name: 'Ask an interpreter or physician…' }).click();
  await pick.locator('option', { hasText: 'Paul Demo — physician' }).waitFor({ state: 'attached' });
  await pick.selectOption({ label: 'Paul Demo — physician' });
  await chat.getByRole('button', { name: 'Ask to join' }).click();
  await paul.getByText('Nora Demo asks you to join a video visit as a consulting physician.').waitFor();
  await paul.getByRole('button', { name: 'Decline' }).click();
  await paul.getByText('You declined. The nurse has been told.').waitFor();
  await chat.getByText('Paul Demo declined to join.').waitFor();
  await shot(nurse, '87-nurse-told-physician-declined');
  step('the physician declined; the nurse was told');

  await chat.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  const officer = await staffSignIn(browser, url, password, 'compliance', '/compliance/');
  let rec;
  for (let k = 0; k < 40 && !rec; k++) {
    const list = await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=' + encodeURIComponent('test: interpreter manifest'))).json());
    rec = list.recordings.find((r) => r.manifest?.ended_ms);
    if (!rec) await sleep(250);
  }
  if (!rec) throw new Error('no finished recording');
  fs.writeFileSync(path.join(artifacts, 'consult-manifest.json'), JSON.stringify(rec.manifest));
  step(`manifest participants: ${JSON.stringify(rec.manifest.participants)}`);
});
