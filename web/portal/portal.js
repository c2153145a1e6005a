// The demo clinic portal. Like a real portal it signs the patient in at its own OpenID provider (here the
// broker's development provider) as a public client with PKCE, then hands the ID token to examroom, which
// verifies it against the provider's keys and opens a patient session.

const ISSUER = `${location.origin}/dev-idp`;
const CLIENT_ID = 'clinic-portal';
const REDIRECT_URI = `${location.origin}/portal/`;

const statusEl = document.getElementById('portal-status');
const signInButton = document.getElementById('portal-sign-in');
const visit = document.getElementById('visit');

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
function randomString() {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}
async function discovery() {
  const resp = await fetch(`${ISSUER}/.well-known/openid-configuration`);
  if (!resp.ok) throw new Error('identity provider unavailable');
  return resp.json();
}

async function startSignIn() {
  const meta = await discovery();
  const verifier = randomString();
  const state = randomString();
  const nonce = randomString();
  sessionStorage.setItem('portal.pkce', JSON.stringify({ verifier, state, nonce }));
  const challenge = b64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const url = new URL(meta.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: 'openid profile',
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

async function finishSignIn(params) {
  const saved = JSON.parse(sessionStorage.getItem('portal.pkce') || 'null');
  sessionStorage.removeItem('portal.pkce');
  history.replaceState(null, '', REDIRECT_URI);
  if (!saved || saved.state !== params.get('state')) throw new Error('sign-in state mismatch; please sign in again');
  const meta = await discovery();
  const tokenResp = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code'), redirect_uri: REDIRECT_URI,
      client_id: CLIENT_ID, code_verifier: saved.verifier,
    }),
  });
  if (!tokenResp.ok) throw new Error('the portal could not complete sign-in');
  const tokens = await tokenResp.json();
  sessionStorage.setItem('portal.id_token', tokens.id_token);
  await openExamroomSession(tokens.id_token);
}

// The portal hands its ID token to the examroom widget, which exchanges it for an examroom session.
// The portal's language goes to the widget (`lang`): the widget speaks it and starts in that language's queue.
function openExamroomSession(idToken) {
  statusEl.textContent = 'You are signed in to MyClinic.';
  visit.hidden = false;
  if (!document.querySelector('#examroom-widget iframe')) {
    // No choice made: the widget follows the browser's language.
    const lang = sessionStorage.getItem('portal.lang') || undefined;
    window.Examroom.open({ container: document.getElementById('examroom-widget'), idToken, lang });
  }
}

const langSelect = document.getElementById('portal-lang');
langSelect.value = sessionStorage.getItem('portal.lang') || '';
langSelect.addEventListener('change', () => {
  sessionStorage.setItem('portal.lang', langSelect.value);
  document.documentElement.lang = langSelect.value || 'en';
  const idToken = sessionStorage.getItem('portal.id_token');
  document.querySelector('#examroom-widget iframe')?.remove();
  if (idToken) openExamroomSession(idToken);
});

async function main() {
  const params = new URLSearchParams(location.search);
  try {
    if (params.has('code')) {
      statusEl.textContent = 'Completing sign-in…';
      await finishSignIn(params);
    } else if (sessionStorage.getItem('portal.id_token')) {
      await openExamroomSession(sessionStorage.getItem('portal.id_token'));
    } else {
      statusEl.textContent = 'Sign in to reach your care team.';
      signInButton.hidden = false;
    }
  } catch (e) {
    statusEl.textContent = e.message;
    statusEl.classList.add('error');
    sessionStorage.removeItem('portal.id_token');
    signInButton.hidden = false;
  }
}

signInButton.addEventListener('click', () => startSignIn().catch((e) => { statusEl.textContent = e.message; }));
main();
