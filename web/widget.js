// examroom patient widget loader. A clinic portal includes this script and calls
//   Examroom.open({ container, idToken, queue })
// The chat itself runs in an iframe served by the broker (its own origin and CSP); the broker allows framing
// only by the configured portal origins. The portal's ID token reaches the frame by postMessage, never in a URL.
(function () {
  const script = document.currentScript;
  const base = new URL(script ? script.src : location.href).origin;

  function open({ container, idToken, queue = 'triage' }) {
    const frame = document.createElement('iframe');
    frame.src = `${base}/widget/?queue=${encodeURIComponent(queue)}`;
    frame.title = 'Secure chat with your care team';
    frame.allow = 'camera; microphone; autoplay';
    frame.style.cssText = 'width:100%;min-height:32rem;border:1px solid #ccc;border-radius:8px';
    window.addEventListener('message', (event) => {
      if (event.origin !== base || event.source !== frame.contentWindow) return;
      if (event.data && event.data.type === 'examroom:ready') {
        frame.contentWindow.postMessage({ type: 'examroom:id_token', idToken }, base);
      }
    });
    container.appendChild(frame);
    return frame;
  }

  window.Examroom = { open };
})();
