// Landing page: shows who is signed in (from /api/v1/me) and offers sign-in and sign-out.
const me = document.getElementById('me');
const signIn = document.getElementById('sign-in');
const signOut = document.getElementById('sign-out');

async function refresh() {
  const resp = await fetch('/api/v1/me', { credentials: 'same-origin' });
  if (resp.ok) {
    const body = await resp.json();
    me.textContent = `Signed in as ${body.display_name ?? 'staff member'} (${body.roles.join(', ')}).`;
    signIn.hidden = true;
    signOut.hidden = false;
  } else {
    me.textContent = 'Not signed in.';
    signIn.hidden = false;
    signOut.hidden = true;
  }
}

signOut.addEventListener('click', async () => {
  await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
  await refresh();
});

refresh();
