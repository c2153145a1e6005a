// The patient's guests (a family member, a caregiver) in the nurse's visit: who waits in the lobby, with
// "Let in" and "Turn away", who is admitted, with "Remove", and each one's answer to the recording question
// (`video_party`); their pictures come as tiles beside the patient's (`VideoCall.onTile`). Frames:
// docs/protocol.md, "Guests".
import { clearTiles, nameTile, showTile } from '/widget/tiles.js';

/** The chat's guest list section, made the first time a visit of it has guests. */
function section(chat) {
  let box = chat.el.querySelector('.guests');
  if (!box) {
    box = document.createElement('section');
    box.className = 'guests';
    box.setAttribute('aria-label', 'Guests of the patient');
    box.innerHTML = '<h4>Patient’s guests</h4><ul aria-live="polite"></ul>';
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
  const recording = g.recording_consent === false ? ' · declined recording (not recorded)' : '';
  return `${g.in_call ? 'in the call' : 'admitted, joining…'}${recording}`;
}

/** The visit's guests as the server lists them, with what the nurse can do about each. */
export function showParty(chat, f, channel) {
  const box = section(chat);
  const send = (frame) => channel.send({ visit_id: f.visit_id, ...frame });
  box.querySelector('ul').replaceChildren(...f.guests.map((g) => {
    const li = document.createElement('li');
    li.append(`${g.name} (guest): ${where(g)} `);
    if (g.state === 'lobby') {
      li.append(button(`Let ${g.name} in`, () => send({ type: 'guest_admit', guest_id: g.guest_id, admit: true })), ' ',
        button('Turn away', () => send({ type: 'guest_admit', guest_id: g.guest_id, admit: false })));
    } else {
      li.append(button(`Remove ${g.name}`, () => send({ type: 'guest_remove', guest_id: g.guest_id })));
    }
    return li;
  }));
  box.hidden = !f.guests.length;
}

/** A new call shows each further participant in a tile. */
export function guestTiles(chat) {
  chat.video.call.onTile = (stream) => showTile(tiles(chat), stream, 'Another participant');
  chat.video.call.onTilesReset = () => clearTiles(tiles(chat));
}

/** Whose picture a stream of her call shows now (`video_tile`): the main one or a tile, captioned. */
export function whoseTile(chat, f) {
  const who = !f.who ? '' : f.who.role === 'guest' ? `${f.who.name} (guest)` : f.who.role === 'patient' ? 'Patient' : 'Nurse';
  nameTile(tiles(chat), chat.el.querySelector('.remote'), f.stream_id, who, 'Another participant');
}

/** The call ended: no tiles, no guest list. */
export function clearGuests(chat) {
  clearTiles(tiles(chat));
  const box = chat.el.querySelector('.guests');
  if (box) { box.hidden = true; box.querySelector('ul').replaceChildren(); }
}
