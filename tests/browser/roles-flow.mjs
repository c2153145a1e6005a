// Pages per role in Chromium: the start page offers each role the places the policy lets it work in; the
// supervisor's board shows queues (with an emergency flag), nurses and chats in progress live, and a live chat
// read-only (updating, then closed when the chat ends); the IT helpdesk gets the system status, and the nurse
// workspace and the board tell it plainly they are not its pages. Every screen passes axe (WCAG 2.1 A and AA).
// Usage: node roles-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import { ariaHas, axeCheck } from './axe.mjs';
import { flow, patientInChat, nurseReady, staffSignIn } from './lib.mjs';

await flow('roles', 'browser roles flow passed', async ({ url, password, browser, shot, step }) => {
  // Signed out: the start page says where staff and patients go.
  const anon = await (await browser.newContext()).newPage();
  await anon.goto(`${url}/`);
  await anon.getByText('Not signed in.').waitFor();
  await anon.getByRole('link', { name: 'Sign in with your clinic account' }).waitFor();
  await anon.getByRole('link', { name: '/portal/' }).waitFor();
  await axeCheck(anon, 'start page, signed out');

  // A patient writes of an emergency while waiting.
  const { widget } = await patientInChat(browser, url, password);
  await widget.getByLabel('Your message', { exact: true }).fill("I can't breathe properly");
  await widget.getByLabel('Your message', { exact: true }).press('Enter');
  await widget.getByText(/If this is an emergency/).waitFor();

  // The supervisor: start page → board; the queue shows the wait and the flag.
  const sup = await staffSignIn(browser, url, password, 'supervisor', '/');
  await sup.getByText('Signed in as Sam Demo.').waitFor();
  // The policy gives supervisors the board and the system status (and nothing else).
  await sup.getByRole('link', { name: 'System status' }).waitFor();
  if (await sup.getByRole('link', { name: 'Nurse workspace' }).count()) throw new Error('supervisor offered the workspace');
  await shot(sup, '30-start-page-supervisor');
  await axeCheck(sup, 'start page, supervisor');
  await sup.getByRole('link', { name: 'Supervisor board' }).click();
  await sup.waitForURL(`${url}/supervisor/`);
  const triage = sup.locator('#queues tr', { hasText: 'triage' });
  await triage.locator('td').nth(1).getByText('1', { exact: true }).waitFor();
  await triage.locator('td').nth(2).getByText('1', { exact: true }).waitFor();
  if (!(await triage.getAttribute('class'))?.includes('urgent')) throw new Error('the flagged queue is not highlighted');
  step('board shows the waiting patient and the emergency flag');

  // A nurse goes ready: the board shows her by name, ready, with the offer open.
  const nurse = await nurseReady(browser, url, password);
  // The nurse's start page offers her workspace, and passes axe too.
  const nurseStart = await nurse.context().newPage();
  await nurseStart.goto(`${url}/`);
  await nurseStart.getByRole('link', { name: 'Nurse workspace' }).waitFor();
  await axeCheck(nurseStart, 'start page, nurse');
  await nurseStart.close();
  const nora = sup.locator('#nurses tr', { hasText: 'Nora Demo' });
  await nora.getByText('Ready').waitFor({ timeout: 15000 });
  await nora.getByText('Yes').waitFor({ timeout: 15000 });
  await nora.locator('td.number').getByText('0', { exact: true }).waitFor();
  step('board shows the nurse, ready, with an offer');
  await shot(sup, '31-supervisor-board');
  await axeCheck(sup, 'supervisor board');
  await ariaHas(sup.locator('body'), 'supervisor board', [
    /- heading "Supervisor board" \[level=1\]/, /- navigation "Pages"/, /- region "Queues"/, /- table/,
    /- row ".*triage/, /- region "Nurses"/, /- table/, /- row ".*Nora Demo.*Ready/, /- region "Chats in progress"/,
  ]);

  // She takes the chat: the board lists it with her name, and the supervisor reads it, read-only, live.
  await nurse.getByRole('button', { name: 'Accept' }).click();
  const chat = nurse.locator('article.chat');
  await chat.getByLabel('Reply').fill('Are you somewhere safe? Help is on the way if you need it.');
  await chat.getByLabel('Reply').press('Enter');
  const live = sup.locator('#chats tr', { hasText: 'With a nurse' });
  await live.getByText('Nora Demo').waitFor({ timeout: 15000 });
  await live.getByText('⚠ Flagged').waitFor();
  // Her load: one chat now.
  await nora.locator('td.number').getByText('1', { exact: true }).waitFor({ timeout: 15000 });
  await live.getByRole('button', { name: /^Read chat ER-/ }).click();
  const transcript = sup.getByRole('list', { name: 'Transcript' });
  await transcript.getByText("Patient: I can't breathe properly").waitFor();
  await transcript.getByText('Nurse: Are you somewhere safe?', { exact: false }).waitFor();
  if (await sup.getByRole('textbox').count()) throw new Error('the supervisor can write in a chat she only reads');
  await chat.getByLabel('Reply').fill('Stay on the line with me.');
  await chat.getByLabel('Reply').press('Enter');
  await transcript.getByText('Nurse: Stay on the line with me.').waitFor({ timeout: 15000 });
  await shot(sup, '31b-supervisor-reads-a-chat');
  await axeCheck(sup, 'supervisor board: a chat read-only');
  await chat.getByRole('button', { name: 'End chat' }).click();
  await sup.getByText(/This chat has ended or is no longer yours to read/).waitFor({ timeout: 15000 });
  await sup.getByText('No chat is in progress.').waitFor({ timeout: 15000 });
  step('supervisor read the live chat as it went on, until it ended');

  // The helpdesk: start page → system status; the workspace is not theirs.
  const help = await staffSignIn(browser, url, password, 'helpdesk', '/');
  await help.getByRole('link', { name: 'System status' }).waitFor();
  await axeCheck(help, 'start page, helpdesk');
  await help.getByRole('link', { name: 'System status' }).click();
  await help.waitForURL(`${url}/status/`);
  await help.locator('#workers tr', { hasText: 'routing' }).getByText('Running').waitFor();
  await help.getByText('Database').waitFor();
  if (await help.getByRole('link', { name: 'Nurse workspace' }).count()) throw new Error('helpdesk offered the workspace');
  await shot(help, '32-helpdesk-status');
  await axeCheck(help, 'system status');
  await ariaHas(help.locator('body'), 'system status', [
    /- heading "System status" \[level=1\]/, /- navigation "Pages"/, /- region "Summary"/, /Database/,
    /- region "Background workers"/, /- row ".*routing.*Running/,
  ]);
  await help.goto(`${url}/workspace/`);
  await help.getByText('This workspace is for nurses').waitFor();
  if (await help.getByRole('button', { name: 'Ready' }).isVisible()) throw new Error('the helpdesk sees a Ready button');
  await shot(help, '33-helpdesk-workspace');
  await axeCheck(help, 'workspace, not a nurse');
  await help.goto(`${url}/supervisor/`);
  await help.getByText('This board is for supervisors').waitFor();
  if (await help.locator('#board').isVisible()) throw new Error('the helpdesk sees the board');
  step('helpdesk sees status, and the workspace says it is for nurses');
});
