// Family members join a recorded visit in Chromium: the patient asks for a one-time link in the widget; the
// guest (a phone-sized page, no account) opens it, types a name and waits in the lobby; the nurse sees them and
// lets them in; the guest agrees to the recording, allows the camera and joins. Everyone then decodes everyone:
// the nurse and the patient see the guest in a tile beside the main picture, the guest sees both. A second guest
// joins the same way but declines the recording: four people, each decoding the three others. The first link,
// opened again, is refused; the nurse removes the first guest, who is told; the nurse ends the video. The
// compliance officer's recording file and manifest, the audit events and the link are written to the artifacts
// for the Rust test.
// Usage: node guest-flow.mjs BROKER_URL CREDENTIALS_JSON ARTIFACT_DIR
import fs from 'node:fs';
import path from 'node:path';
import { axeCheck } from './axe.mjs';
import { captions, consoleTiles, flow, recordPeerConnections, recordedVisit, seesOthers, staffSignIn, tilesPlayed, widgetFrame } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await flow('guest', 'browser guest flow passed', async ({ url, password, browser, shot, step }) => {
  const [, , artifacts] = process.argv.slice(2);
  const { patient, widget, nurse, chat } = await recordedVisit(browser, url, password);
  step('patient and nurse in a recorded visit');

  await widget.getByRole('button', { name: 'Invite a family member or caregiver' }).click();
  await widget.getByLabel('Invitation link').waitFor();
  const link = await widget.getByLabel('Invitation link').inputValue();
  if (!/\/guest\/#[0-9a-f]{48}$/.test(link)) throw new Error(`unexpected link ${link}`);
  fs.writeFileSync(path.join(artifacts, 'guest-link.txt'), link);
  await shot(patient, '70-patient-invites-a-guest');
  await axeCheck(widgetFrame(patient), 'widget: guest link');
  step('the patient has a one-time link');

  const ctx = await browser.newContext({ viewport: { width: 375, height: 740 } });
  await ctx.addInitScript(recordPeerConnections);
  const guest = await ctx.newPage();
  guest.on('pageerror', (e) => console.log(`guest page error: ${e.message}`));
  await guest.goto(link);
  await guest.getByLabel('Your name').fill('Ana Guest');
  if (guest.url().includes('#')) throw new Error(`the token stayed in the address bar: ${guest.url()}`);
  await shot(guest, '71-guest-opens-link');
  await axeCheck(guest, 'guest: name');
  await guest.getByRole('button', { name: 'Join the visit' }).click();
  await guest.getByText('You are in the waiting area. The nurse will let you in shortly.').waitFor();
  await shot(guest, '72-guest-in-lobby');
  await axeCheck(guest, 'guest: lobby');
  await widget.getByText('Ana Guest: waiting for the nurse to let them in').waitFor();
  await chat.getByText('Ana Guest (guest): waiting in the lobby').waitFor();
  await shot(nurse, '73-nurse-sees-guest-in-lobby');
  await axeCheck(nurse, 'workspace: guest in the lobby');
  step('the guest waits in the lobby; nurse and patient see them');

  await chat.getByRole('button', { name: 'Let Ana Guest in' }).click();
  await guest.getByText('The nurse let you in.', { exact: false }).waitFor();
  await guest.getByLabel(/I agree that this video visit is recorded/).check();
  await guest.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await guest.getByRole('button', { name: 'Join video' }).click();
  const g = await seesOthers(guest, 'the guest', 2);
  const n = await seesOthers(nurse, 'the nurse', 2);
  const p = await seesOthers(widgetFrame(patient), 'the patient', 2);
  step(`everyone decodes everyone: guest ${JSON.stringify(g)}, nurse ${JSON.stringify(n)}, patient ${JSON.stringify(p)}`);
  for (const [who, target] of [['patient', widgetFrame(patient)], ['nurse', nurse], ['guest', guest]]) {
    const size = await target.evaluate(async () => {
      const tile = document.querySelector('.tiles video');
      for (let i = 0; i < 80 && !(tile?.videoWidth > 0); i++) await new Promise((r) => setTimeout(r, 250));
      return tile ? [tile.videoWidth, tile.videoHeight] : null;
    });
    if (!size || !(size[0] > 0)) throw new Error(`the ${who} shows no picture in a tile: ${size}`);
  }
  await widget.getByText('Ana Guest: in the call').waitFor();
  await chat.getByText('Ana Guest (guest): in the call').waitFor();
  // Each picture says whose it is: the server tells each viewer which stream carries whom.
  const expected = { nurse: ['Ana Guest (guest)', 'Patient'], patient: ['Ana Guest (guest)', 'Nurse'], guest: ['Nurse', 'Patient'] };
  for (const [who, target] of [['nurse', nurse], ['patient', widgetFrame(patient)], ['guest', guest]]) {
    const got = await captions(target);
    if (JSON.stringify(got) !== JSON.stringify(expected[who])) throw new Error(`the ${who}'s pictures are captioned ${JSON.stringify(got)}`);
  }
  step('every picture is captioned with whose it is');
  await shot(guest, '74-guest-in-call');
  await shot(patient, '75-patient-with-guest');
  await shot(nurse, '76-nurse-with-guest');
  await axeCheck(guest, 'guest: in the call');
  await axeCheck(widgetFrame(patient), 'widget: with a guest');
  await axeCheck(nurse, 'workspace: with a guest');

  // A second guest, who says no to the recording: four in the visit.
  await widget.getByRole('button', { name: 'Invite a family member or caregiver' }).click();
  await widgetFrame(patient).waitForFunction((old) => document.getElementById('guest-link').value !== old, link);
  const link2 = await widget.getByLabel('Invitation link').inputValue();
  const ctx2 = await browser.newContext({ viewport: { width: 375, height: 740 } });
  await ctx2.addInitScript(recordPeerConnections);
  const second = await ctx2.newPage();
  await second.goto(link2);
  await second.getByLabel('Your name').fill('Bo Guest');
  await second.getByRole('button', { name: 'Join the visit' }).click();
  await chat.getByRole('button', { name: 'Let Bo Guest in' }).click();
  await second.getByText('The nurse let you in.', { exact: false }).waitFor();
  await second.getByRole('button', { name: 'Allow camera and microphone' }).click();
  await second.getByRole('button', { name: 'Join video' }).click();
  const four = [];
  for (const [who, target] of [['second guest', second], ['guest', guest], ['nurse', nurse], ['patient', widgetFrame(patient)]]) {
    four.push(`${who} ${JSON.stringify(await seesOthers(target, who, 3))}`);
  }
  await chat.getByText('Bo Guest (guest): in the call · declined recording (not recorded)').waitFor();
  await second.getByText('The visit is recorded, but not you: you said no.').waitFor();
  await shot(nurse, '79-nurse-with-two-guests');
  await shot(second, '79b-second-guest-in-call');
  await axeCheck(nurse, 'workspace: two guests');
  step(`four in the visit, each decoding the three others: ${four.join(', ')}`);
  await sleep(2000);

  // The same link again (forwarded on, say): refused, and nobody new waits in the lobby.
  const again = await (await browser.newContext({ viewport: { width: 375, height: 740 } })).newPage();
  await again.goto(link);
  await again.getByLabel('Your name').fill('Someone Else');
  await again.getByRole('button', { name: 'Join the visit' }).click();
  await again.getByText('This link cannot be used any more', { exact: false }).waitFor();
  await shot(again, '77-guest-link-used');
  step('the link is refused once used');

  await chat.getByRole('button', { name: 'Remove Ana Guest' }).click();
  await guest.getByText('The nurse has ended your part in this visit.', { exact: false }).waitFor();
  await widget.getByText('Ana Guest: in the call').waitFor({ state: 'hidden' });
  // Her picture goes from the others' screens (nobody's media is on that tile any more).
  await chat.locator('.tiles figure', { hasText: 'Ana Guest' }).waitFor({ state: 'hidden' });
  await shot(guest, '78-guest-removed');
  await axeCheck(guest, 'guest: removed');
  step('the nurse removed the guest');
  await sleep(1000);
  await chat.getByRole('button', { name: 'End video' }).click();
  await widget.getByText('The video has ended. You can keep chatting.').waitFor();

  const officer = await staffSignIn(browser, url, password, 'compliance', '/compliance/');
  let rec;
  for (let i = 0; i < 40 && !rec; i++) {
    const list = await officer.evaluate(async () => (await fetch('/api/v1/recordings?reason=' + encodeURIComponent('test: guest manifest'))).json());
    rec = list.recordings.find((r) => r.manifest?.ended_ms);
    if (!rec) await sleep(250);
  }
  if (!rec) throw new Error('no finished recording');
  fs.writeFileSync(path.join(artifacts, 'guest-manifest.json'), JSON.stringify(rec.manifest));
  // The original file, and each recorded participant's own (their tracks alone, remuxed by the broker).
  const download = async (query, name) => {
    const got = await officer.evaluate(async ([id, query]) => {
      const resp = await fetch(`/api/v1/recordings/${id}/download?reason=${encodeURIComponent('test: guest tracks')}${query}`);
      const bytes = new Uint8Array(await resp.arrayBuffer());
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return { status: resp.status, body: btoa(s) };
    }, [rec.id, query]);
    if (name) fs.writeFileSync(path.join(artifacts, name), Buffer.from(got.body, 'base64'));
    return got.status;
  };
  await download('', 'guest-recording.webm');
  for (const track of [1, 3, 6]) {
    const status = await download(`&participant=${track}`, `guest-track${track}.webm`);
    if (status !== 200) throw new Error(`participant ${track}: HTTP ${status}`);
  }
  // Read by ranges as a player does (each answer short of the end, the next asked from where it stopped), the
  // guest's stream is the same bytes as their download, and past its end is 416.
  const ranged = await officer.evaluate(async (id) => {
    const base = `/api/v1/recordings/${id}/stream?reason=${encodeURIComponent('test: ranges')}&participant=6`;
    const parts = [];
    let at = 0;
    let total = Infinity;
    for (const size of [1000, 70000, 300000]) {
      const resp = await fetch(base, { headers: { range: `bytes=${at}-${at + size - 1}` } });
      parts.push(new Uint8Array(await resp.arrayBuffer()));
      total = Number(resp.headers.get('content-range').split('/')[1]);
      at += parts.at(-1).length;
    }
    while (at < total) {
      const resp = await fetch(base, { headers: { range: `bytes=${at}-` } });
      parts.push(new Uint8Array(await resp.arrayBuffer()));
      at += parts.at(-1).length;
    }
    const past = (await fetch(base, { headers: { range: `bytes=${total}-` } })).status;
    const whole = new Uint8Array(await (await fetch(`/api/v1/recordings/${id}/download?reason=ranges&participant=6`)).arrayBuffer());
    const joined = new Uint8Array(at);
    let o = 0;
    for (const p of parts) { joined.set(p, o); o += p.length; }
    const same = joined.length === whole.length && joined.every((b, i) => b === whole[i]);
    return { same, past, total, pieces: parts.length };
  }, rec.id);
  if (!ranged.same || ranged.past !== 416) throw new Error(`the guest's stream by ranges: ${JSON.stringify(ranged)}`);
  step(`the guest's file by ${ranged.pieces} ranges is their download (${ranged.total} bytes); past the end 416`);
  // The guest who declined has no file; a number that is no one's video is refused.
  const [declined, nobody] = [await download('&participant=8'), await download('&participant=2')];
  if (declined !== 404 || nobody !== 400) throw new Error(`declined guest ${declined}, audio track ${nobody}`);
  step('downloaded the original file and the patient\'s, nurse\'s and guest\'s own');
  // The console plays the three recorded people side by side, each with picture and sound.
  await officer.getByLabel('Reason for access').fill('test: four-person review');
  await officer.getByRole('button', { name: 'Show recordings' }).click();
  await officer.getByRole('button', { name: /Open recording REC-/ }).click();
  // From two seconds after the guest came in, so everyone is on screen and heard.
  const guestIn = rec.manifest.participants.find((p) => p.role === 'guest' && p.recorded).joined_ms - rec.manifest.started_ms;
  const tiles = await consoleTiles(officer, { at: guestIn / 1000 + 2 });
  tilesPlayed(tiles);
  const named = tiles.map((t) => t.caption).join(' | ');
  if (named !== 'Patient | Nurse: Nora Demo | Guest 1') throw new Error(`tiles: ${named}`);
  await officer.locator('#facts').getByText('patient, nurse, 2 guests').waitFor();
  await shot(officer, '79c-compliance-three-recorded');
  await axeCheck(officer, 'compliance console: a visit with guests');
  step(`console: ${named}, each with picture and sound, in step`);
  const events = await officer.evaluate(async () => {
    const all = [];
    for (;;) {
      const page = (await (await fetch(`/api/v1/audit/events?limit=500&after=${all.at(-1)?.seq ?? 0}`)).json()).events;
      all.push(...page);
      // Each read is itself audited: a short page is the last one.
      if (page.length < 500) return all;
    }
  });
  fs.writeFileSync(path.join(artifacts, 'guest-audit.json'), JSON.stringify({ events }));
  step(`manifest participants: ${JSON.stringify(rec.manifest.participants)}`);
});
