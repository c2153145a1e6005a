// Browser test of a patient whose browser has no VP8 (Safari with VP8 turned off), in Debian's headless Chromium
// told to offer only H.264 for video: the SFU answers it with H.264, asks the nurse's browser (which joined
// first, sending VP8) to negotiate again, answers H.264 first, and from then on each side decodes the other's
// H.264 video (getStats: the codec of what each receives and sends) and hears the other.
// Usage: node h264-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, mediaFlowing, widgetFrame } from './lib.mjs';

const [url, credentialsFile, artifacts] = process.argv.slice(2);
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await launch();
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });

/** Media flowing in `target` and both directions in H.264; the last stats otherwise, after `ms`. */
async function h264Both(name, target, ms = 30000) {
  const deadline = Date.now() + ms;
  let s = null;
  while (Date.now() < deadline) {
    s = await mediaFlowing(target, 5000);
    if (s && s.videoCodecIn === 'video/H264' && s.videoCodecOut === 'video/H264') {
      console.log(`${name}: framesDecoded ${s.framesDecoded}, receives ${s.videoCodecIn}, sends ${s.videoCodecOut}`);
      return s;
    }
  }
  throw new Error(`${name}: not H.264 both ways: ${JSON.stringify(s || (await inbound(target)))}`);
}

try {
  const { page: patient, widget } = await patientInChat(browser, url, password, { videoCodec: 'video/H264' });
  const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByRole('button', { name: 'Join video' }).click();
  await h264Both('patient', widgetFrame(patient));
  await h264Both('nurse', nurse);
  await shot(patient, '40-patient-h264-video');
  console.log('browser h264 flow passed');
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
