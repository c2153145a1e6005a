// examroom patient widget loader. A clinic portal includes this script and calls
//   Examroom.open({ container, idToken, queue, lang })
// `lang` ('en', 'es'): the widget's language (else the browser's); without `queue` the broker starts the chat
// in the queue configured for that language (else the first queue).
// The chat itself runs in an iframe served by the broker (its own origin and CSP); the broker allows framing
// only by the configured portal origins. The portal's ID token reaches the frame by postMessage, never in a URL.
(function () {
  const script = document.currentScript;
  const base = new URL(script ? script.src : location.href).origin;

  function open({ container, idToken, queue, lang }) {
    const frame = document.createElement('iframe');
    const params = new URLSearchParams();
    if (queue) params.set('queue', queue);
    if (lang) params.set('lang', lang);
    frame.src = `${base}/widget/?${params}`;
    frame.title = 'Secure chat with your care team';
    frame.allow = 'camera; microphone; autoplay';
    frame.style.cssText = 'width:100%;min-height:32rem;border:1px solid #ccc;border-radius:8px';
    window.addEventListener('message', function onMessage(event) {
      // A widget the portal took away (re-opened in another language, say) stops listening.
      if (!frame.isConnected) { window.removeEventListener('message', onMessage); return; }
      if (event.origin !== base || event.source !== frame.contentWindow) return;
      if (event.data && event.data.type === 'examroom:ready') {
        frame.contentWindow.postMessage({ type: 'examroom:id_token', idToken }, base);
      }
      // In a call the whole widget (picture and control bar) must be on screen, not below the page's fold.
      if (event.data && event.data.type === 'examroom:show') {
        const box = frame.getBoundingClientRect();
        if (box.top < 0 || box.bottom > window.innerHeight) {
          const still = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
          // Its bottom, where the control bar is, on screen (all of it when the screen is tall enough).
          frame.scrollIntoView({ block: 'end', behavior: still ? 'auto' : 'smooth' });
        }
      }
    });
    container.appendChild(frame);
    return frame;
  }

  window.Examroom = { open };
})();
