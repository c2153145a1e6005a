// The markup of one chat in the nurse workspace (docs/ui.md): the patient's context, the transcript, the reply
// box, and the video section (device check, the call's picture and controls, the demo EMR). The workspace
// fills it in and wires it; nothing here runs.
export const CHAT_PANEL = `<h3></h3><div class="patient-context"></div><ol aria-live="polite"></ol>
    <form><label>Reply <textarea rows="2" maxlength="4000" required></textarea></label>
    <p><button type="submit">Send</button> <button type="button" class="end">End chat</button>
    <button type="button" class="video-start">Start video…</button></p></form>
    <section class="video" hidden aria-label="Video">
      <div class="check" hidden><video class="preview" playsinline autoplay muted aria-label="Your camera"></video>
        <p><label>Microphone level <meter min="0" max="1" value="0"></meter></label></p>
        <p><button type="button" class="video-go">Ask the patient to join video</button></p></div>
      <div class="stage"><video class="remote" playsinline autoplay aria-label="Patient video" hidden></video><p class="who"></p>
        <p class="audio-only" hidden></p>
        <video class="self" playsinline autoplay muted aria-label="You" hidden></video></div>
      <p class="patient-media" role="status" aria-live="polite"></p>
      <p class="video-status" role="status" aria-live="polite"></p>
      <p class="recording" role="status" aria-live="polite"></p>
      <p class="screen-recording" hidden><span class="screen-state" role="status"></span> <button type="button" aria-pressed="false">Record my screen</button></p>
      <div class="controls" role="toolbar" aria-label="Call controls"><button type="button" class="video-mic" aria-pressed="false" hidden>Mute</button>
        <button type="button" class="video-camera" aria-pressed="false" hidden>Turn camera off</button>
        <button type="button" class="video-mode" hidden>Switch to audio only</button> <button type="button" class="screen-share" aria-pressed="false" hidden>Share my screen</button>
        <button type="button" class="video-end">End video</button>
        <span class="quality" role="status"></span> <span class="screen-note" role="status"></span></div>
      <section class="emr" aria-label="Demo EMR">
        <h4>Demo EMR</h4>
        <details class="emr-section"><summary>Allergies</summary><p>Penicillin (rash).</p></details>
        <details class="emr-section sensitive" data-section="identity"><summary>Identity (SSN) — sensitive, pauses recording</summary>
          <p>SSN: 000-00-0000 (demo)</p></details>
      </section>
    </section>`;
