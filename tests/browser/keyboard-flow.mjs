// The patient's visit by keyboard alone on a phone-sized screen (375 × 740) in Chromium: from the portal the
// Tab key reaches the widget's first field; the reason and the messages go with Enter; the nurse's video
// request is allowed and joined with Enter (focus is put on each button), the call is ended from the control
// bar with Tab and Enter, and focus comes back to the message box; at the end focus is on "Start a new chat"
// and the copy is saved with the keyboard. The nurse's side is driven as usual. Every screen passes axe.
// Usage: node keyboard-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import { axeCheck, widgetFrame } from './axe.mjs';
import { flow, nurseReady } from './lib.mjs';

await flow('keyboard', 'browser keyboard flow passed', async ({ url, password, browser, shot, step }) => {
  const ctx = await browser.newContext({ viewport: { width: 375, height: 740 }, hasTouch: true, acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`patient page error: ${e.message}`));
  await page.goto(`${url}/portal/`);
  await page.getByRole('button', { name: 'Sign in to MyClinic' }).click();
  await page.getByLabel('User name').fill('patient');
  await page.getByLabel('Password').fill(password('patient'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${url}/portal/`);
  const widget = page.frameLocator('#examroom-widget iframe');
  await widget.getByRole('button', { name: 'Start a chat with a nurse' }).waitFor();
  const frame = widgetFrame(page);
  const focused = () => frame.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
  await shot(page, '07a-phone-start');
  await axeCheck(frame, 'widget on a phone: start');

  // Tab from the top of the portal until the widget's first field has focus.
  await page.locator('body').focus();
  let tabs = 0;
  while ((await focused()) !== 'reason') {
    if (++tabs > 15) throw new Error(`Tab never reached the widget's first field (at ${await focused()})`);
    await page.keyboard.press('Tab');
  }
  await page.keyboard.type('Earache');
  await page.keyboard.press('Enter');
  await widget.getByText(/You are number 1 in line/).waitFor();
  if ((await focused()) !== 'message') throw new Error(`after starting, focus is on ${await focused()}`);
  await page.keyboard.type('My left ear hurts since yesterday');
  await page.keyboard.press('Enter');
  await widget.locator('li.mine:not(.pending)', { hasText: 'My left ear hurts' }).waitFor();
  step(`patient started and wrote by keyboard (${tabs} Tab presses to reach the widget)`);
  await shot(page, '07-phone-waiting');
  await axeCheck(frame, 'widget on a phone: waiting');

  const nurse = await nurseReady(browser, url, password);
  await nurse.getByRole('button', { name: 'Accept' }).click();
  await widget.getByText('A nurse has joined').waitFor();
  const chat = nurse.locator('article.chat');
  await chat.getByLabel('Reply').fill('Hello, any fever?');
  await chat.getByLabel('Reply').press('Enter');
  await widget.getByText('Nurse: Hello, any fever?').waitFor();
  // Focus stayed in the message box after sending.
  await page.keyboard.type('No fever');
  await page.keyboard.press('Enter');
  await chat.getByText('Patient: No fever').waitFor();

  // Video, by keyboard: each step puts focus on the button to press.
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).waitFor();
  if ((await focused()) !== 'video-allow') throw new Error(`the video prompt left focus on ${await focused()}`);
  await page.keyboard.press('Enter');
  await widget.getByRole('button', { name: 'Join video' }).waitFor();
  if ((await focused()) !== 'video-join') throw new Error(`the device check left focus on ${await focused()}`);
  await page.keyboard.press('Enter');
  await widget.getByText(/Connection: (good|fair|poor)/).waitFor({ timeout: 20000 });
  await shot(page, '07b-phone-call');
  await axeCheck(frame, 'widget on a phone: in a call');
  let presses = 0;
  while ((await focused()) !== 'video-end') {
    if (++presses > 20) throw new Error(`Tab never reached "End video" (at ${await focused()})`);
    await page.keyboard.press('Tab');
  }
  await page.keyboard.press('Enter');
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  if ((await focused()) !== 'message') throw new Error(`after the video, focus is on ${await focused()}`);
  await page.keyboard.type('Thank you');
  await page.keyboard.press('Enter');
  await chat.getByText('Patient: Thank you').waitFor();
  step(`video allowed, joined and ended by keyboard (${presses} Tab presses to "End video")`);
  await chat.getByRole('button', { name: 'End chat' }).click();
  await widget.getByText('This chat has ended. Thank you.').waitFor();
  if ((await focused()) !== 'new-chat') throw new Error(`at the end, focus is on ${await focused()}`);
  await shot(page, '08-phone-ended');
  await axeCheck(frame, 'widget on a phone: ended');
  // Shift+Tab is not needed: the copy is the next stop after "Start a new chat".
  const download = page.waitForEvent('download');
  await page.keyboard.press('Tab');
  if ((await focused()) !== 'save-copy') throw new Error(`Tab after "Start a new chat" went to ${await focused()}`);
  await page.keyboard.press('Enter');
  const copy = fs.readFileSync(await (await download).path(), 'utf8');
  if (!copy.includes('You: My left ear hurts since yesterday')) throw new Error(`the copy lacks the chat: ${copy}`);
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  if ((await focused()) !== 'reason') throw new Error(`"Start a new chat" left focus on ${await focused()}`);
  step('ended, copy saved, a new chat can start: all by keyboard');
});
