// Video from a network that drops every UDP packet (a hospital firewall): Chromium in a namespace whose nftables
// drop UDP, the broker in another. `ice-tcp`: the SFU's passive TCP candidates carry the media directly;
// `turn-tcp`: the SFU offers no TCP, and the media goes through coturn over TCP. Each side must decode the
// other's frames over the expected path. First the patient runs the widget's pre-call test, whose verdict must
// match: "Video will work" over TCP (directly, or through the relay), "Audio only" with the camera blocked, and
// `blocked` (the firewall drops the SFU's ports over TCP too, no TURN): "Blocked", and no visit is tried.
// `turns`: TCP is dropped too except to 443, and the media goes through coturn over TLS on 443;
// `turns-untrusted`: the same with a certificate Chromium does not trust: "Blocked".
// Usage: node firewall-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR ice-tcp|turn-tcp|turns|turns-untrusted|blocked
import fs from 'node:fs';
import path from 'node:path';
import { launch, passwords, patientInChat, nurseAccepting, inbound, mediaFlowing, widgetFrame, precallVerdict } from './lib.mjs';
import { axeCheck } from './axe.mjs';

const [url, credentialsFile, artifacts, mode] = process.argv.slice(2);
const password = passwords(credentialsFile);
fs.mkdirSync(artifacts, { recursive: true });
const browser = await launch(url);
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `firewall-${mode}-${name}.png`), fullPage: true });

try {
  const { page: patient, widget } = await patientInChat(browser, url, password);
  const pre = await precallVerdict(widget);
  console.log(`pre-call (${mode}): ${pre.kind}: ${pre.title} ${pre.route}`);
  await shot(patient, 'precall');
  await axeCheck(widgetFrame(patient), `widget: pre-call verdict "${pre.kind}"`);
  const refused = mode === 'blocked' || mode === 'turns-untrusted';
  const expected = refused ? 'blocked' : 'video';
  if (pre.kind !== expected) throw new Error(`pre-call: expected ${expected}, got ${JSON.stringify(pre)}`);
  if (refused) {
    if (!/network/.test(pre.title)) throw new Error(`pre-call: the network should be named: ${pre.title}`);
    console.log(`browser firewall flow: ${mode} passed`);
  } else {
    const route = { 'ice-tcp': /directly \(TCP\)/, 'turn-tcp': /relay server \(TCP\)/, turns: /relay server \(TLS\)/ }[mode];
    if (!route.test(pre.route)) throw new Error(`pre-call: expected ${route}, got ${pre.route}`);
    if (mode === 'ice-tcp') {
      // The camera blocked (as a patient's "Block" would): audio only, and why.
      await widgetFrame(patient).evaluate(() => {
        const md = navigator.mediaDevices;
        window.__gum = md.getUserMedia.bind(md);
        md.getUserMedia = (c) => (c.video ? Promise.reject(new DOMException('blocked', 'NotAllowedError')) : window.__gum(c));
      });
      const cameraless = await precallVerdict(widget);
      console.log(`pre-call (camera blocked): ${cameraless.kind}: ${cameraless.title}`);
      await shot(patient, 'precall-no-camera');
      await axeCheck(widgetFrame(patient), `widget: pre-call verdict "${cameraless.kind}"`);
      if (cameraless.kind !== 'audio' || !/camera/.test(cameraless.title)) throw new Error(`pre-call without a camera: ${JSON.stringify(cameraless)}`);
      await widgetFrame(patient).evaluate(() => { navigator.mediaDevices.getUserMedia = window.__gum; });
    }
    await widget.getByRole('button', { name: 'Close' }).click();
    const { page: nurse, chat } = await nurseAccepting(browser, url, password, widget);
    console.log('step: chat accepted with UDP blocked');
    await chat.getByRole('button', { name: 'Start video…' }).click();
    await chat.getByRole('button', { name: 'Ask the patient to join video' }).click();
    await widget.getByRole('button', { name: 'Allow camera and microphone' }).click();
    await widget.getByRole('button', { name: 'Join video' }).click();
    console.log('step: patient joined video');
    const p = await mediaFlowing(widgetFrame(patient), 30000);
    const n = await mediaFlowing(nurse, 30000);
    if (!p || !n) throw new Error(`no media with UDP blocked: patient ${JSON.stringify(await inbound(widgetFrame(patient)))}, nurse ${JSON.stringify(await inbound(nurse))}`);
    for (const [who, s] of [['patient', p], ['nurse', n]]) {
      const ok = mode === 'ice-tcp'
        ? s.localProtocol === 'tcp' && !s.relay && s.remoteType === 'host'
        : s.relay && s.relayProtocol === (mode === 'turns' ? 'tls' : 'tcp');
      if (!ok) throw new Error(`${who}: expected ${mode}, selected ${JSON.stringify(s)}`);
      console.log(`${who}: framesDecoded ${s.framesDecoded}, audio packets ${s.audioPackets}, local ${s.localProtocol}${s.relay ? ` relay/${s.relayProtocol}` : ''} to ${s.remoteType} ${s.remoteAddress}`);
    }
    await chat.getByText(/Video: you connected, patient connected/).waitFor();
    await shot(patient, 'patient');
    console.log(`browser firewall flow: ${mode} passed`);
  }
} catch (e) {
  console.error(e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, `failure-${p.url().split('/')[3] || 'page'}`).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
