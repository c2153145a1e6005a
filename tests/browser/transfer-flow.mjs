// Handing a chat on, in Chromium. Warm: the nurse opens "Transfer…" and asks the colleague listed there; the
// colleague's offer says who asks; a decline leaves the chat with the nurse, who is told; asked again, the
// colleague accepts and has the chat with the conversation so far, and the first nurse's panel folds. Cold:
// the colleague transfers it to the triage queue; the patient is told and is first in line; the first nurse,
// ready again, is offered it. The patient keeps the same chat throughout. Every screen passes axe.
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
  await chat.getByLabel('Reply').fill('Yes, I will ask my colleague.');
  await chat.getByLabel('Reply').press('Enter');
  await widget.getByText('Nurse: Yes, I will ask my colleague.').waitFor();
  const nico = await nurseReady(browser, url, password, 'nurse2');

  // Warm: Nora asks Nico, who is listed by name.
  await chat.getByRole('button', { name: 'Transfer…' }).click();
  if (!(await chat.getByLabel('Transfer to the queue').evaluate((el) => el === document.activeElement))) {
    throw new Error('"Transfer…" left focus elsewhere');
  }
  const colleague = chat.getByLabel('Or ask a colleague to take over');
  await colleague.locator('option', { hasText: 'Nico Demo' }).waitFor({ state: 'attached' });
  await shot(nora, '50-nurse-transfer-choice');
  await axeCheck(nora, 'workspace: transfer choice');
  await chat.getByRole('button', { name: 'Ask', exact: true }).click();
  await chat.getByText('Asking Nico Demo to take over… The chat stays with you until they accept.').waitFor();
  const offer = nico.locator('#offers li', { hasText: 'Transfer from Nora Demo' });
  await offer.waitFor();
  await offer.getByText('First message: “Do you have a nurse who speaks Spanish?”').waitFor();
  await shot(nico, '50b-colleague-asked');
  await offer.getByRole('button', { name: 'Decline' }).click();
  await chat.getByText('Nico Demo declined. The chat is still yours.').waitFor();
  if (!(await chat.getByLabel('Reply').isVisible())) throw new Error('a declined transfer took the chat away');
  step('asked, the colleague declined: the chat stayed, and the nurse was told');
  await chat.getByRole('button', { name: 'Ask', exact: true }).click();
  await nico.locator('#offers li', { hasText: 'Transfer from Nora Demo' }).getByRole('button', { name: 'Accept' }).click();
  await chat.getByText('Transferred to Nico Demo: the next nurse sees the conversation so far.').waitFor();
  if (await chat.getByLabel('Reply').isVisible()) throw new Error('the transferred chat still offers a reply box');
  await shot(nora, '51-nurse-transferred');
  await axeCheck(nora, 'workspace: chat transferred');
  const taken = nico.locator('article.chat');
  await taken.getByText('Patient: Do you have a nurse who speaks Spanish?').waitFor();
  await taken.getByText('Nurse: Yes, I will ask my colleague.').waitFor();
  await taken.getByLabel('Reply').fill('Hola, le atiendo yo.');
  await taken.getByLabel('Reply').press('Enter');
  await widget.getByText('Nurse: Hola, le atiendo yo.').waitFor();
  await shot(nico, '53-colleague-has-the-chat');
  step('asked again, the colleague took the chat with the conversation so far');

  // Cold: Nico sends it to the triage queue; Nora, ready again, is offered it.
  await nora.getByRole('button', { name: 'Ready now' }).click();
  await taken.getByRole('button', { name: 'Transfer…' }).click();
  await taken.getByLabel('Transfer to the queue').selectOption('triage');
  await taken.getByRole('button', { name: 'Transfer', exact: true }).click();
  await taken.getByText('Transferred to the triage queue: the next nurse sees the conversation so far.').waitFor();
  await widget.getByText(/Your nurse has passed your chat to a colleague. You are first in line/).waitFor();
  await shot(page, '52-patient-transferred');
  await axeCheck(widgetFrame(page), 'widget: transferred');
  await nora.locator('#offers li', { hasText: '(triage)' }).getByRole('button', { name: 'Accept' }).click();
  await widget.getByText('A nurse has joined').waitFor();
  step('sent cold to the triage queue, the patient was told, and the next nurse took it');
});
