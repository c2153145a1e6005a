// The patient's visit by keyboard alone on a phone-sized screen (375 × 740) in Chromium, in English and then in
// Spanish: from the portal the Tab key reaches the widget's first field; the reason and the messages go with
// Enter; the nurse's video request is allowed and joined with Enter (focus is put on each button; under a
// recording policy that asks, on the consent question first, ticked with Space); the call is ended from the
// control bar with Tab and Enter, and focus comes back to the message box; at the end focus is on "Start a new
// chat" and the copy is saved with the keyboard. The Spanish patient's browser speaks Spanish and the portal
// names no language: the widget follows the browser, starts in the Spanish queue, and reassures in Spanish while
// she waits. The nurse's side is driven as usual. Every screen passes axe.
// Usage: node keyboard-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import { axeCheck, widgetFrame } from './axe.mjs';
import { flow, nurseReady } from './lib.mjs';

const VISITS = [
  {
    lang: 'en', locale: 'en-US', patient: 'patient', nurse: 'nurse', shots: '', consent: true,
    reason: 'Earache', first: 'My left ear hurts since yesterday', second: 'No fever', thanks: 'Thank you',
    start: 'Start a chat with a nurse', inLine: /You are number 1 in line/, joined: 'A nurse has joined',
    allow: 'Allow camera and microphone', join: 'Join video', quality: /Connection: (good|fair|poor)/,
    videoEnded: 'The video has ended. You can keep chatting.', ended: 'This chat has ended. Thank you.', you: 'You',
  },
  {
    lang: 'es', locale: 'es-ES', patient: 'patient2', nurse: 'nurse2', shots: '-es', consent: true,
    reassurance: 'Gracias por esperar. Una enfermera le atenderá pronto.',
    reason: 'Dolor de oído', first: 'Me duele el oído izquierdo desde ayer', second: 'No tengo fiebre', thanks: 'Gracias',
    start: 'Iniciar un chat con una enfermera', inLine: /Usted es el número 1 en la fila/, joined: 'Una enfermera se ha unido',
    allow: 'Permitir cámara y micrófono', join: 'Unirse al video', quality: /Conexión: (buena|regular|mala)/,
    videoEnded: 'El video ha terminado. Puede seguir en el chat.', ended: 'Este chat ha terminado. Gracias.', you: 'Usted',
  },
];

await flow('keyboard', 'browser keyboard flow passed', async ({ url, password, browser, shot, step }) => {
  for (const v of VISITS) {
    const ctx = await browser.newContext({ viewport: { width: 375, height: 740 }, hasTouch: true, acceptDownloads: true, locale: v.locale });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.log(`patient page error: ${e.message}`));
    await page.goto(`${url}/portal/`);
    await page.getByRole('button', { name: 'Sign in to MyClinic' }).click();
    await page.getByLabel('User name').fill(v.patient);
    await page.getByLabel('Password').fill(password(v.patient));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${url}/portal/`);
    const widget = page.frameLocator('#examroom-widget iframe');
    await widget.getByRole('button', { name: v.start }).waitFor();
    const frame = widgetFrame(page);
    const lang = await frame.evaluate(() => document.documentElement.lang);
    if (lang !== v.lang) throw new Error(`a browser in ${v.locale} got a widget in ${lang}`);
    const focused = () => frame.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    await shot(page, `07a-phone-start${v.shots}`);
    await axeCheck(frame, `widget on a phone (${v.lang}): start`);

    // Tab from the top of the portal until the widget's first field has focus.
    await page.locator('body').focus();
    let tabs = 0;
    while ((await focused()) !== 'reason') {
      if (++tabs > 15) throw new Error(`Tab never reached the widget's first field (at ${await focused()})`);
      await page.keyboard.press('Tab');
    }
    await page.keyboard.type(v.reason);
    await page.keyboard.press('Enter');
    await widget.getByText(v.inLine).waitFor();
    // The widget moves focus to the message box once the chat is drawn: allow it a moment after the line shows.
    for (let i = 0; i < 20 && (await focused()) !== 'message'; i++) await new Promise((r) => setTimeout(r, 100));
    if ((await focused()) !== 'message') throw new Error(`after starting, focus is on ${await focused()}`);
    await page.keyboard.type(v.first);
    await page.keyboard.press('Enter');
    await widget.locator('li.mine:not(.pending)', { hasText: v.first }).waitFor();
    step(`${v.lang}: patient started and wrote by keyboard (${tabs} Tab presses to reach the widget)`);
    await shot(page, `07-phone-waiting${v.shots}`);
    await axeCheck(frame, `widget on a phone (${v.lang}): waiting`);
    if (v.reassurance) {
      // The queue's first reassurance comes after 30 s of waiting, in the patient's language.
      await widget.getByText(v.reassurance).waitFor({ timeout: 45000 });
      step(`${v.lang}: reassured while waiting`);
    }

    const nurse = await nurseReady(browser, url, password, v.nurse);
    await nurse.getByRole('button', { name: 'Accept' }).click();
    await widget.getByText(v.joined).waitFor();
    const chat = nurse.locator('article.chat');
    await chat.getByLabel('Reply').fill('Hello, any fever?');
    await chat.getByLabel('Reply').press('Enter');
    await widget.getByText(/: Hello, any fever\?$/).waitFor();
    // Focus stayed in the message box after sending.
    await page.keyboard.type(v.second);
    await page.keyboard.press('Enter');
    await chat.getByText(`Patient: ${v.second}`).waitFor();

    // Video, by keyboard: each step puts focus on what to answer or press.
    await chat.getByRole('button', { name: 'Start video…' }).click();
    await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
    await widget.getByRole('button', { name: v.allow }).waitFor();
    if (v.consent) {
      if ((await focused()) !== 'video-consent-box') throw new Error(`the recording question left focus on ${await focused()}`);
      await page.keyboard.press('Space');
      if (!(await frame.evaluate(() => document.getElementById('video-consent-box').checked))) throw new Error('Space did not tick the consent');
      await page.keyboard.press('Tab');
    }
    if ((await focused()) !== 'video-allow') throw new Error(`the video prompt left focus on ${await focused()}`);
    await page.keyboard.press('Enter');
    await widget.getByRole('button', { name: v.join }).waitFor();
    if ((await focused()) !== 'video-join') throw new Error(`the device check left focus on ${await focused()}`);
    await page.keyboard.press('Enter');
    await widget.getByText(v.quality).waitFor({ timeout: 20000 });
    if (v.consent) await chat.getByText('● Recording', { exact: true }).waitFor();
    await shot(page, `07b-phone-call${v.shots}`);
    await axeCheck(frame, `widget on a phone (${v.lang}): in a call`);
    let presses = 0;
    while ((await focused()) !== 'video-end') {
      if (++presses > 20) throw new Error(`Tab never reached "End video" (at ${await focused()})`);
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter');
    await widget.getByText(v.videoEnded).waitFor();
    if ((await focused()) !== 'message') throw new Error(`after the video, focus is on ${await focused()}`);
    await page.keyboard.type(v.thanks);
    await page.keyboard.press('Enter');
    await chat.getByText(`Patient: ${v.thanks}`).waitFor();
    step(`${v.lang}: video allowed${v.consent ? ' (recording consented)' : ''}, joined and ended by keyboard (${presses} Tab presses to the end button)`);
    await chat.getByRole('button', { name: 'End chat' }).click();
    await widget.getByText(v.ended).waitFor();
    if ((await focused()) !== 'new-chat') throw new Error(`at the end, focus is on ${await focused()}`);
    await shot(page, `08-phone-ended${v.shots}`);
    await axeCheck(frame, `widget on a phone (${v.lang}): ended`);
    // Shift+Tab is not needed: the copy is the next stop after "Start a new chat".
    const download = page.waitForEvent('download');
    await page.keyboard.press('Tab');
    if ((await focused()) !== 'save-copy') throw new Error(`Tab after "Start a new chat" went to ${await focused()}`);
    await page.keyboard.press('Enter');
    const copy = fs.readFileSync(await (await download).path(), 'utf8');
    if (!copy.includes(`${v.you}: ${v.first}`)) throw new Error(`the copy lacks the chat: ${copy}`);
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Enter');
    if ((await focused()) !== 'reason') throw new Error(`"Start a new chat" left focus on ${await focused()}`);
    step(`${v.lang}: ended, copy saved, a new chat can start: all by keyboard`);
    await nurse.context().close();
    await ctx.close();
  }
});
