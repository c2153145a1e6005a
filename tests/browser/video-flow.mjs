// Browser end-to-end test of video elevation, in Debian's headless Chromium (fake camera and microphone),
// run inside a network namespace that has only loopback. The nurse elevates an accepted chat, the patient
// allows camera and microphone in the widget, both join through the SFU; each side must decode frames from
// the other (getStats framesDecoded increasing) and receive audio packets. Then the nurse ends the video.
// Usage: node video-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR [relay]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.TEST_OIDC_PROVIDER_DIR || path.resolve('tests/support'), 'package.json'));
const { chromium } = require('playwright-core');

const [url, credentialsFile, artifacts, mode] = process.argv.slice(2);
const tag = mode === 'relay' ? `relay-${process.env.TURN_TRANSPORT || 'udp'}-` : '';
const creds = JSON.parse(fs.readFileSync(credentialsFile, 'utf8'));
const password = (u) => creds.users.find((x) => x.username === u).password;
fs.mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
    '--allow-loopback-in-peer-connection'],
});
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${tag}${name}.png`), fullPage: true });
const step = (msg) => console.log(`step: ${msg}`);

// Records every RTCPeerConnection a page (or its frames) creates, so the test can read getStats().
const recordPeerConnections = () => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype;
};

// Inbound totals of the newest open peer connection in `target` (a page or frame).
async function inbound(target) {
  return target.evaluate(async () => {
    const pc = window.__pcs.filter((p) => p.connectionState !== 'closed').at(-1);
    if (!pc) return null;
    const out = { framesDecoded: 0, audioPackets: 0, videoPackets: 0, pli: 0, relay: false, state: pc.connectionState };
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out.framesDecoded += s.framesDecoded || 0;
        out.videoPackets += s.packetsReceived || 0;
        out.pli += s.pliCount || 0;
      }
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets += s.packetsReceived || 0;
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
        const local = stats.get(s.localCandidateId);
        if (local && local.candidateType === 'relay') out.relay = true;
      }
    });
    return out;
  });
}

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

try {
  const patientCtx = await browser.newContext();
  await patientCtx.addInitScript(recordPeerConnections);
  const patient = await patientCtx.newPage();
  patient.on('pageerror', (e) => console.log(`patient page error: ${e.message}`));
  await patient.goto(`${url}/portal/`);
  await patient.getByRole('button', { name: 'Sign in to MyClinic' }).click();
  await patient.getByLabel('User name').fill('patient');
  await patient.getByLabel('Password').fill(password('patient'));
  await patient.getByRole('button', { name: 'Sign in' }).click();
  await patient.waitForURL(`${url}/portal/`);
  const widget = patient.frameLocator('#examroom-widget iframe');
  await widget.getByRole('button', { name: 'Start a chat with a nurse' }).click();
  await widget.getByText(/Your reference number: ER-/).waitFor();

  const nurseCtx = await browser.newContext();
  await nurseCtx.addInitScript(recordPeerConnections);
  const nurse = await nurseCtx.newPage();
  nurse.on('pageerror', (e) => console.log(`nurse page error: ${e.message}`));
  await nurse.goto(`${url}/workspace/`);
  await nurse.getByLabel('User name').fill('nurse');
  await nurse.getByLabel('Password').fill(password('nurse'));
  await nurse.getByRole('button', { name: 'Sign in' }).click();
  await nurse.waitForURL(`${url}/workspace/`);
  await nurse.getByRole('button', { name: 'Ready' }).click();
  await nurse.getByRole('button', { name: 'Accept' }).click();
  await widget.getByText('A nurse has joined').waitFor();
  step('chat accepted');

  const chat = nurse.locator('article.chat');
  await chat.getByRole('button', { name: 'Start video…' }).click();
  await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
  await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await widget.getByText(/Check that you can see yourself/).waitFor();
  await shot(patient, '04-patient-device-check');
  await widget.getByRole('button', { name: 'Join video' }).click();
  step('patient allowed camera and microphone and joined');

  const widgetFrame = patient.frames().find((f) => f.url().includes('/widget/'));
  const p = await flowing('patient', widgetFrame);
  const n = await flowing('nurse', nurse);
  if (mode === 'relay' && !(p.relay && n.relay)) throw new Error('expected relayed candidate pairs on both sides');
  await chat.getByText(/Video: you connected, patient connected/).waitFor();
  step('frames decoded both ways');
  await shot(patient, '05-patient-video');
  await shot(nurse, '06-nurse-video');

  await chat.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();
  await widget.getByLabel('Your message').waitFor();
  step('video ended, chat goes on');
  console.log('browser video flow passed');
} catch (e) {
  console.error(e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
