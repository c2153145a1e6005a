// A family member or caregiver in the patient's visit, as the patient and the guests see it: the patient asks
// for a one-time link (`guest_invite`, answered `guest_link`) and sends it; everyone sees who else is in the
// visit, waiting for the nurse or in the call (`video_party`). Frames: docs/protocol.md, "Guests".
import { t, whoLabel } from '/widget/i18n.js';

const $ = (id) => document.getElementById(id);

/** The list of guests in `list`, each with where they are; `me`: the guest viewing it, if one is. */
export function renderParty(list, guests, me) {
  list.replaceChildren(...guests.map((g) => {
    const li = document.createElement('li');
    const key = { lobby: 'guestWaiting', asked: 'guestAsked' }[g.state] || (g.in_call ? 'guestInCall' : 'guestJoining');
    const name = g.role && g.role !== 'guest' ? whoLabel(g.role, g.name) : g.name;
    li.textContent = t(key, { name: g.guest_id === me ? t('guestYou', { name }) : name });
    return li;
  }));
  list.closest('[data-party]').hidden = !guests.length;
}

export const guestHandlers = {
  guest_link(f) {
    const url = new URL(f.link, location.origin).href;
    const time = new Intl.DateTimeFormat(document.documentElement.lang, { timeStyle: 'short' }).format(new Date(f.expires_at_ms));
    $('guest-link-text').textContent = t('guestLinkReady', { time });
    $('guest-link').value = url;
    $('guest-link-box').hidden = false;
    $('guest-link').focus({ preventScroll: true });
    $('guest-link').select();
    // Above the call's control bar, which stays at the bottom of the frame.
    $('guest-link-box').scrollIntoView({ block: 'nearest' });
  },
  /** `me`: the participant viewing it, if they are in the list (a guest, or staff asked in). */
  video_party(f, me) { renderParty($('party-list'), f.guests, me); },
};

/** The patient's invite button; `visitId()` is the visit in progress. */
export function wireInvite(ch, visitId) {
  $('guest-invite').addEventListener('click', () => {
    if (visitId()) ch.send({ type: 'guest_invite', visit_id: visitId() });
  });
  $('guest-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('guest-link').value);
      $('guest-copied').textContent = t('copied');
    } catch {
      $('guest-link').select();
    }
  });
}

/** Hides the invitation and the list (the call ended). */
export function clearParty() {
  if ($('guest-link-box')) {
    $('guest-link-box').hidden = true;
    $('guest-link').value = '';
    $('guest-copied').textContent = '';
  }
  renderParty($('party-list'), []);
}
