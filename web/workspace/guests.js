// Others in the nurse's visit: the patient's guests (a family member, a caregiver) — who waits in the lobby,
// with "Let in" and "Turn away", who is admitted, with "Remove" — and the interpreters and physicians she asks
// in ("Ask an interpreter or physician…", `consult_staff` / `consult_invite`), each with their answer to the
// recording question (`video_party`); their pictures come as tiles beside the patient's (`VideoCall.onTile`).
// Frames: docs/protocol.md, "Guests" and "Interpreters and physicians".
import { clearTiles, nameTile, showTile } from '/widget/tiles.js';

/** The chat's guest list section, made the first time a visit of it has guests. */
function section(chat) {
  let box = chat.el.querySelector('.guests');
  if (!box) {
    box = document.createElement('section');
    box.className = 'guests';
    box.setAttribute('aria-label', 'Others in this visit');
    box.innerHTML = '<h4>Others in this visit</h4><ul aria-live="polite"></ul>';
    chat.el.querySelector('.video .controls').before(box);
  }
  return box;
}

function tiles(chat) {
  let box = chat.el.querySelector('.video .tiles');
  if (!box) {
    box = document.createElement('div');
    box.className = 'tiles';
    box.hidden = true;
    chat.el.querySelector('.video .stage').after(box);
  }
  return box;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

/** Where a guest is, in the nurse's words. */
function where(g) {
  if (g.state === 'lobby') return 'waiting in the lobby';
  if (g.state === 'asked') return 'asked, waiting for their answer';
  const recording = g.recording_consent === false ? ' · declined recording (not recorded)' : '';
  return `${g.in_call ? 'in the call' : 'admitted, joining…'}${recording}`;
}

/** The visit's guests as the server lists them, with what the nurse can do about each. */
export function showParty(chat, f, channel) {
  const box = section(chat);
  const send = (frame) => channel.send({ visit_id: f.visit_id, ...frame });
  box.querySelector('ul').replaceChildren(...f.guests.map((g) => {
    const li = document.createElement('li');
    li.append(`${g.name} (${g.role || 'guest'}): ${where(g)} `);
    if (g.state === 'lobby') {
      li.append(button(`Let ${g.name} in`, () => send({ type: 'guest_admit', guest_id: g.guest_id, admit: true })), ' ',
        button('Turn away', () => send({ type: 'guest_admit', guest_id: g.guest_id, admit: false })));
    } else if (g.state === 'asked') {
      li.append(button(`Withdraw the request to ${g.name}`, () => send({ type: 'guest_remove', guest_id: g.guest_id })));
    } else {
      li.append(button(`Remove ${g.name}`, () => send({ type: 'guest_remove', guest_id: g.guest_id })));
    }
    return li;
  }));
  box.hidden = !f.guests.length;
  // Nobody left to answer: "Asked …" is over (a decline is told after this).
  const status = chat.el.querySelector('.consult-status');
  if (status && !f.guests.some((g) => g.state === 'asked')) status.textContent = '';
}

/** The "Ask an interpreter or physician…" control of her call: lists who is signed in, asks one in. */
function consultBox(chat, channel) {
  let box = chat.el.querySelector('.consult');
  if (box) return box;
  box = document.createElement('div');
  box.className = 'consult';
  box.innerHTML = `<p><button type="button" class="consult-open">Ask an interpreter or physician…</button></p>
    <p class="consult-pick" hidden><label>Interpreter or physician&nbsp; <select></select></label>
      <button type="button" class="consult-ask">Ask to join</button></p>
    <p class="consult-status" role="status" aria-live="polite"></p>`;
  chat.el.querySelector('.video .controls').after(box);
  const q = (sel) => box.querySelector(sel);
  q('.consult-open').addEventListener('click', () => {
    q('.consult-status').textContent = 'Looking for who is signed in…';
    channel.send({ type: 'consult_staff', visit_id: chat.video.visitId });
  });
  q('.consult-ask').addEventListener('click', () => {
    const pick = q('select').selectedOptions[0];
    if (!pick) return;
    channel.send({ type: 'consult_invite', visit_id: chat.video.visitId, staff_id: pick.value });
    q('.consult-pick').hidden = true;
    q('.consult-status').textContent = `Asked ${pick.dataset.name}. They join once they accept.`;
  });
  return box;
}

/** The signed-in interpreters and physicians (`consult_staff`), to pick one from. */
function showConsultants(chat, f) {
  const box = chat.el.querySelector('.consult');
  if (!box) return;
  const q = (sel) => box.querySelector(sel);
  q('select').replaceChildren(...f.staff.map((s) => {
    const o = document.createElement('option');
    o.value = s.staff_id;
    o.dataset.name = s.name || s.role;
    const skills = s.skills.length ? `, ${s.skills.join(', ')}` : '';
    o.textContent = `${s.name || 'Unnamed'} — ${s.role}${skills}`;
    return o;
  }));
  q('.consult-pick').hidden = !f.staff.length;
  q('.consult-status').textContent = f.staff.length ? '' : 'No interpreter or physician is signed in right now.';
  if (f.staff.length) q('select').focus();
}

/** A new call shows each further participant in a tile, and offers to ask staff in. */
export function guestTiles(chat, channel) {
  chat.video.call.onTile = (stream) => showTile(tiles(chat), stream, 'Another participant');
  chat.video.call.onTilesReset = () => clearTiles(tiles(chat));
  const box = consultBox(chat, channel);
  box.hidden = false;
  box.querySelector('.consult-pick').hidden = true;
  box.querySelector('.consult-status').textContent = '';
}

/** Whose picture a stream of her call shows now (`video_tile`): the main one or a tile, captioned. */
function whoseTile(chat, f) {
  const fixed = { patient: 'Patient', nurse: 'Nurse' }[f.who?.role];
  const who = !f.who ? '' : fixed || `${f.who.name} (${f.who.role})`;
  nameTile(tiles(chat), chat.el.querySelector('.remote'), f.stream_id, who, 'Another participant');
}

const CONSULT_REFUSED = {
  not_consultant: 'They are no longer signed in as an interpreter or physician.',
  already_in_visit: 'They are already in this visit, or asked to join it.',
  visit_full: 'The visit is full (six people at most).',
};

/** A refused request to ask someone in, said where it was asked (error frames name no visit); whether it was one. */
export function consultRefused(code, chats) {
  if (!CONSULT_REFUSED[code]) return false;
  for (const chat of chats) {
    const status = chat.el.querySelector('.consult-status');
    if (status?.textContent.startsWith('Asked ')) status.textContent = CONSULT_REFUSED[code];
  }
  return true;
}

/** The workspace's handlers of these frames; `chatOf` finds the chat of a visit. */
export function partyHandlers(chatOf, channel) {
  const on = (fn) => (f) => { const chat = chatOf(f.visit_id); if (chat) fn(chat, f); };
  return {
    video_party: on((chat, f) => showParty(chat, f, channel())),
    video_tile: on(whoseTile),
    consult_staff: on(showConsultants),
    consult_declined: on((chat, f) => {
      const status = chat.el.querySelector('.consult-status');
      if (status) status.textContent = `${f.name} declined to join.`;
    }),
  };
}

/** The call ended: no tiles, no guest list, nobody to ask in. */
export function clearGuests(chat) {
  clearTiles(tiles(chat));
  const consult = chat.el.querySelector('.consult');
  if (consult) consult.hidden = true;
  const box = chat.el.querySelector('.guests');
  if (box) { box.hidden = true; box.querySelector('ul').replaceChildren(); }
}
