// Browser end-to-end test of video elevation, in Debian's headless Chromium (fake camera and microphone),
// run inside a network namespace that has only loopback. The nurse elevates an accepted chat, the patient
// allows camera and microphone in the widget, both join through the SFU; each side must decode frames from
// the other (getStats framesDecoded increasing) and receive audio packets; the patient reloads and rejoins the
// same visit; then the nurse ends the video and the chat goes on.
// Usage: node video-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR [relay]
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, widgetFrame } from './lib.mjs';
import { ariaHas, axeCheck } from './axe.mjs';

const [url, credentialsFile, artifacts, mode] = process.argv.slice(2);
const tag = mode === 'relay' ? `relay-${process.env.TURN_TRANSPORT || 'udp'}-` : '';
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${tag}${name}.png`), fullPage: true });
const step = (msg) => console.log(`step: ${msg}`);

async function flowing(name, target) {
  const deadline = Date.now() + 30000;
  let first = null;
  while (Date.now() < deadline) {
    const s = await inbound(target);
    if (s && s.framesDecoded > 0 && s.audioPackets > 0) {
      if (!first) first = s;
      else if (s.framesDecoded > first.framesDecoded + 5) {
        console.log(`${name}: framesDecoded ${first.framesDecoded} -> ${s.framesDecoded}, audio packets ${s.audioPackets}, relay ${s.relay}`);
        return s;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${name}: no media from the other side: ${JSON.stringify(await inbound(target))}`);
}

/** `what` is entirely inside the widget's frame and the phone's or laptop's screen: what the patient sees
 *  without scrolling anything. The portal's loader scrolls the widget into view when a call starts (smoothly),
 *  so this waits a little for it. */
async function inside(page, what, name) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const frame = await page.locator('#examroom-widget iframe').boundingBox();
    const box = await what.boundingBox();
    const screen = page.viewportSize();
    const within = (outer) => box && box.y >= outer.y - 1 && box.y + box.height <= outer.y + outer.height + 1
      && box.x >= outer.x - 1 && box.x + box.width <= outer.x + outer.width + 1;
    if (within(frame) && within({ x: 0, y: 0, width: screen.width, height: screen.height })) return;
    if (Date.now() > deadline) {
      throw new Error(`${name} is outside what the patient sees: ${JSON.stringify(box)} in ${JSON.stringify(frame)} on a ${screen.width}×${screen.height} screen`);
    }
    await page.waitForTimeout(100);
  }
}

/** `what` is entirely on the nurse's screen (the workspace page's viewport); the call scrolls into view
 *  smoothly, so this waits a little for it. */
async function onScreen(page, what, name) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const box = await what.boundingBox();
    const { width, height } = page.viewportSize();
    if (box && box.y >= -1 && box.y + box.height <= height + 1 && box.x >= -1 && box.x + box.width <= width + 1) return;
    if (Date.now() > deadline) throw new Error(`${name} is off the nurse's screen: ${JSON.stringify(box)} on ${width}×${height}`);
    await page.waitForTimeout(100);
  }
}

/** In a call: the nurse large, yourself small, the connection quality, and every control in view. */
async function callScreen(page, widget, label) {
  await widget.locator('#video-self').waitFor({ state: 'visible' });
  await widget.getByText(/Connection: (good|fair|poor)/).waitFor({ timeout: 10000 });
  for (const name of ['Mute', 'Turn camera off', 'Switch to audio only', 'End video, keep chatting']) {
    await inside(page, widget.getByRole('button', { name }), `${label}: ${name}`);
  }
  await inside(page, widget.locator('#video-remote'), `${label}: the nurse's video`);
  // Captions-ready: two lines of words go on the picture, beside the self-view, above the control bar.
  const boxes = await widgetFrame(page).evaluate(() => {
    const c = document.getElementById('video-captions');
    c.textContent = 'Nurse: please hold the camera a little closer so I can see the rash on your arm.';
    c.hidden = false;
    const box = (el) => { const b = el.getBoundingClientRect(); return { l: b.left, t: b.top, r: b.right, b: b.bottom }; };
    return { captions: box(c), video: box(document.getElementById('video-remote')), self: box(document.getElementById('video-self')),
      badge: box(document.getElementById('video-recording')), bar: box(document.querySelector('#video-call .controls')) };
  });
  const overlaps = (a, b) => a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b;
  const { captions, video } = boxes;
  if (captions.l < video.l || captions.r > video.r || captions.t < video.t || captions.b > video.b + 1) {
    throw new Error(`${label}: the captions leave the picture: ${JSON.stringify(boxes)}`);
  }
  for (const other of ['self', 'badge', 'bar']) {
    if (overlaps(captions, boxes[other])) throw new Error(`${label}: the captions cover the ${other}: ${JSON.stringify(boxes)}`);
  }
  await inside(page, widget.locator('#video-captions'), `${label}: the captions`);
  await shot(page, `05a-patient-call-${label}`);
  // axe sees the captions too (their contrast on the picture).
  await axeCheck(widgetFrame(page), `widget: call screen with captions (${label})`);
  await widgetFrame(page).evaluate(() => { document.getElementById('video-captions').hidden = true; });
  await ariaHas(widget.locator('#video-call'), `widget: call screen (${label})`, [
    /- status: This visit is/, /- toolbar "Call controls"/, /- button "Mute"/, /- button "Turn camera off"/,
    /- button "Switch to audio only"/, /- button "End video, keep chatting"/, /- status: "?▮.* Connection: (good|fair|poor)/,
  ]);
}

try {
  const { page: patient, widget } = await patientInChat(browser, url, password);
  const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
  step('chat accepted');

  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).waitFor();
  await axeCheck(widgetFrame(patient), 'widget: the video prompt');
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByText(/Check that you can see yourself/).waitFor();
  await shot(patient, '04-patient-device-check');
  await axeCheck(widgetFrame(patient), 'widget: the device check');
  await widget.getByRole('button', { name: 'Join video' }).click();
  step('patient allowed camera and microphone and joined');

  const p = await flowing('patient', widgetFrame(patient));
  const n = await flowing('nurse', nurse);
  if (mode === 'relay' && !(p.relay && n.relay)) throw new Error('expected relayed candidate pairs on both sides');
  await chat.getByText(/Video: you connected, patient connected/).waitFor();
  step('frames decoded both ways');
  await axeCheck(nurse, 'workspace: in a call');
  // The nurse's call: the patient large, herself small, the connection's quality, every control on screen.
  await chat.locator('video.self').waitFor({ state: 'visible' });
  await chat.getByText(/Connection: (good|fair|poor) \(\d+ ms/).waitFor({ timeout: 10000 });
  for (const name of ['Mute', 'Turn camera off', 'Switch to audio only', 'End video']) {
    await onScreen(nurse, chat.getByRole('button', { name, exact: true }), `the nurse's ${name}`);
  }
  await onScreen(nurse, chat.locator('video.remote'), "the patient's picture");
  // Scrolled to the end of the page (the EMR under the call), and to the top, the control bar stays in view.
  await chat.locator('.emr details').first().click();
  await nurse.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await onScreen(nurse, chat.getByRole('button', { name: 'End video', exact: true }), "the nurse's End video at the page's end");
  await nurse.evaluate(() => window.scrollTo(0, 0));
  await onScreen(nurse, chat.getByRole('button', { name: 'End video', exact: true }), "the nurse's End video at the page's top");
  await chat.locator('.emr details').first().click();
  await ariaHas(chat.getByRole('region', { name: 'Video' }), 'workspace: call screen', [
    /- status: "?Video: you connected, patient connected/, /- toolbar "Call controls"/, /- button "Mute"/, /- button "Turn camera off"/, /- button "Switch to audio only"/, /- button "End video"/,
    /- status: "?Connection: (good|fair|poor)/,
  ]);
  await shot(patient, '05-patient-video');
  await shot(nurse, '06-nurse-video');
  await callScreen(patient, widget, 'wide');
  // On a wide screen the chat is beside the video, both in view.
  const message = widget.getByRole('textbox', { name: 'Your message' });
  await inside(patient, message, 'wide: the message box');
  const [msgBox, videoBox] = [await message.boundingBox(), await widget.locator('#video-remote').boundingBox()];
  if (msgBox.x < videoBox.x + videoBox.width) throw new Error(`wide: the chat is not beside the video: ${JSON.stringify({ msgBox, videoBox })}`);
  // The same call on a phone-sized screen: the chat becomes a drawer, the control bar stays.
  await patient.setViewportSize({ width: 375, height: 740 });
  await callScreen(patient, widget, 'phone');
  // The drawer slides, unless the patient's system asks for reduced motion.
  const slide = () => widgetFrame(patient).evaluate(() => getComputedStyle(document.getElementById('chat-pane')).transitionDuration);
  await patient.emulateMedia({ reducedMotion: 'reduce' });
  if (!/^0s(, 0s)*$/.test(await slide())) throw new Error(`reduced motion still slides the drawer: ${await slide()}`);
  await patient.emulateMedia({ reducedMotion: 'no-preference' });
  if (/^0s(, 0s)*$/.test(await slide())) throw new Error('the drawer does not slide at all');
  await widget.getByRole('button', { name: 'Chat', exact: true }).click();
  await widget.getByRole('textbox', { name: 'Your message' }).waitFor();
  await inside(patient, widget.getByRole('textbox', { name: 'Your message' }), 'the message box in the drawer');
  await patient.waitForTimeout(400); // the drawer's slide
  // The open drawer leaves the control bar uncovered.
  const onTop = await widgetFrame(patient).evaluate(() => ['video-mic', 'video-end'].map((id) => {
    const b = document.getElementById(id).getBoundingClientRect();
    return document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2)?.id;
  }));
  if (onTop.join() !== 'video-mic,video-end') throw new Error(`the chat drawer covers the controls: ${onTop}`);
  await shot(patient, '05b-patient-video-phone-chat');
  await widget.getByRole('button', { name: 'Back to video' }).click();
  await patient.setViewportSize({ width: 1280, height: 800 });
  step('call screen: self-view, quality, controls in view at 1280 and 375 px, chat drawer');

  // The patient reloads the portal: the widget resumes the same session, comes back to the same visit and
  // rejoins it.
  const sessionOf = async () => JSON.parse(await widgetFrame(patient).evaluate(() => sessionStorage.getItem('examroom.session')) || 'null')?.session_id;
  const sessionBefore = await sessionOf();
  if (!sessionBefore) throw new Error('the widget kept no session for a reload');
  await patient.reload();
  const widgetAgain = patient.frameLocator('#examroom-widget iframe');
  await widgetAgain.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widgetAgain.getByRole('button', { name: 'Join video' }).click();
  const nurseBefore = (await inbound(nurse)).framesDecoded;
  await flowing('patient after reload', widgetFrame(patient));
  const deadline = Date.now() + 20000;
  while ((await inbound(nurse)).framesDecoded < nurseBefore + 10) {
    if (Date.now() > deadline) throw new Error('nurse decodes nothing after the patient rejoined');
    await new Promise((r) => setTimeout(r, 250));
  }
  if ((await sessionOf()) !== sessionBefore) throw new Error('the reload opened a new session instead of resuming');
  step('patient reloaded and rejoined the same visit');

  await chat.getByRole('button', { name: 'End video' }).click();
  await widgetAgain.getByText('The video has ended. You can keep chatting.').waitFor();
  await widgetAgain.getByLabel('Your message').waitFor();
  // Nothing stale: no call controls on either side once the video is over, and the nurse may start again.
  await chat.getByRole('button', { name: 'Start video…' }).waitFor();
  for (const name of ['End video', 'Mute', 'Turn camera off', 'Switch to audio only']) {
    if (await chat.getByRole('button', { name, exact: true }).isVisible()) throw new Error(`the nurse still sees "${name}" after the video`);
  }
  for (const name of ['End video, keep chatting', 'Mute']) {
    if (await widgetAgain.getByRole('button', { name }).isVisible()) throw new Error(`the patient still sees "${name}" after the video`);
  }
  await shot(patient, '05c-patient-video-ended');
  await axeCheck(widgetFrame(patient), 'widget: video ended, chat goes on');
  await axeCheck(nurse, 'workspace: video ended, chat goes on');
  step('video ended, chat goes on');
  console.log('browser video flow passed');
} catch (e) {
  console.error(e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
