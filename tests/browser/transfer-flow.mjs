// A cold transfer in Chromium: the nurse takes a chat from the triage queue, opens "Transfer…", picks the
// Spanish queue; her panel folds and says where the chat went (Ready now, Close); the patient is told a
// colleague takes over and that they are first in line; the Spanish-speaking nurse is offered the chat and
// reads the conversation so far. Every screen passes axe.
// Usage: node transfer-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import { axeCheck, widgetFrame } from './axe.mjs';
import { flow, nurseReady, patientInChat } from './lib.mjs';

await flow('transfer', 'browser transfer flow passed', async ({ url, password, browser, shot, step }) => {
  const { page, widget } = await patientInChat(browser, url, password);
  await widget.getByLabel('Your message', { exact: true }).fill('Do you have a nurse who speaks Spanish?');
  await widget.getByLabel('Your message', { exact: true }).press('Enter');
  const nora = await nurseReady(browser, url, password);
  await nora.getByRole('button', { name: 'Accept' }).click();
  const chat = nora.locator('article.chat');
  await chat.getByLabel('Reply').fill('Yes, I will pass you to my colleague.');
  await chat.getByLabel('Reply').press('Enter');
  await widget.getByText('Nurse: Yes, I will pass you to my colleague.').waitFor();

  await chat.getByRole('button', { name: 'Transfer…' }).click();
  const queue = chat.getByLabel('Transfer to the queue');
  if (!(await queue.evaluate((el) => el === document.activeElement))) throw new Error('"Transfer…" left focus elsewhere');
  await queue.selectOption('spanish');
  await shot(nora, '50-nurse-transfer-choice');
  await axeCheck(nora, 'workspace: transfer choice');
  await chat.getByRole('button', { name: 'Transfer', exact: true }).click();
  await chat.getByText('Transferred to the spanish queue: the next nurse there sees the conversation so far.').waitFor();
  if (await chat.getByLabel('Reply').isVisible()) throw new Error('the transferred chat still offers a reply box');
  await chat.getByRole('button', { name: 'Ready now' }).waitFor();
  await shot(nora, '51-nurse-transferred');
  await axeCheck(nora, 'workspace: chat transferred');
  step('the nurse transferred the chat to the Spanish queue');

  await widget.getByText(/Your nurse has passed your chat to a colleague. You are first in line/).waitFor();
  await widget.getByText(/You are number 1 in line/).waitFor();
  await shot(page, '52-patient-transferred');
  await axeCheck(widgetFrame(page), 'widget: transferred');
  step('the patient was told, first in line');

  const nico = await nurseReady(browser, url, password, 'nurse2');
  await nico.locator('#offers li', { hasText: '(spanish)' }).waitFor();
  await nico.getByRole('button', { name: 'Accept' }).click();
  const taken = nico.locator('article.chat');
  await taken.getByText('Patient: Do you have a nurse who speaks Spanish?').waitFor();
  await taken.getByText('Nurse: Yes, I will pass you to my colleague.').waitFor();
  await shot(nico, '53-colleague-has-the-chat');
  await widget.getByText('A nurse has joined').waitFor();
  step('the Spanish-speaking nurse has the chat and everything said so far');
});
