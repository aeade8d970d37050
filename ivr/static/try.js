"use strict";
// The browser phone: talks to /try/api, which places the call server-side through the real,
// signed webhooks. Prompts are shown as text and, if chosen, read aloud in their language.
(() => {
  const form = document.getElementById("dial");
  if (!form) return;
  const keys = Array.from(document.querySelectorAll(".key"));
  const status = document.getElementById("status");
  const transcript = document.getElementById("transcript");
  const receipt = document.getElementById("receipt");
  const fields = document.getElementById("receipt-fields");
  const speakBox = document.getElementById("speak");
  let callId = null;
  let timer = null;

  function line(text, language, cls) {
    const li = document.createElement("li");
    if (cls) li.className = cls;
    if (language) {
      const tag = document.createElement("span");
      tag.className = "lang";
      tag.textContent = `[${language}]`;
      li.append(tag);
    }
    li.append(document.createTextNode(text));
    transcript.append(li);
  }

  function speak(text, language) {
    if (!speakBox.checked || !("speechSynthesis" in window)) return;
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = language || "en-US";
    window.speechSynthesis.speak(utterance);
  }

  function setKeys(enabled) {
    keys.forEach((k) => { k.disabled = !enabled; });
  }

  const csrf = document.getElementById("phone").dataset.csrf || "";

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function countdown(seconds) {
    clearInterval(timer);
    let left = seconds;
    status.textContent = `Press a key: ${left} s left.`;
    timer = setInterval(() => {
      left -= 1;
      if (left <= 0) { press("-"); return; }
      status.textContent = `Press a key: ${left} s left.`;
    }, 1000);
  }

  function showReceipt(data) {
    fields.replaceChildren();
    for (const [name, value] of Object.entries(data)) {
      const dt = document.createElement("dt");
      dt.textContent = name.replaceAll("_", " ");
      const dd = document.createElement("dd");
      dd.textContent = Array.isArray(value) ? value.join("; ") : String(value ?? "");
      fields.append(dt, dd);
    }
    receipt.hidden = false;
  }

  // Keys are disabled while a key is sent, which drops the keyboard focus: give it back, so a
  // keyboard user goes on with Tab, Enter and Space where they were (the first key after dialling).
  let focusAfter = null;

  function show(data) {
    let words = 0;
    for (const s of data.spoken) {
      line(s.text, s.language);
      speak(s.text, s.language);
      words += s.text.split(/\s+/).length;
    }
    if (data.state === "waiting") {
      setKeys(true);
      if (focusAfter) { focusAfter.focus(); focusAfter = null; }
      // Twilio's Gather timeout starts when the prompt has been said.
      countdown(data.timeout + (speakBox.checked ? Math.ceil(words / 2.5) : 0));
      return;
    }
    clearInterval(timer);
    setKeys(false);
    callId = null;
    document.getElementById("call").disabled = false;
    if (focusAfter) { status.setAttribute("tabindex", "-1"); status.focus(); focusAfter = null; }
    if (data.rehearsal) {
      status.textContent = "Rehearsal ended: nothing was recorded.";
    } else if (data.receipt) {
      status.textContent = `Call ended: ${data.receipt.action} recorded.`;
      showReceipt(data.receipt);
    } else {
      status.textContent = "Call ended: no consent was recorded for this call.";
    }
  }

  async function press(key) {
    if (!callId) return;
    clearInterval(timer);
    const active = document.activeElement;
    if (active && active.classList.contains("key")) focusAfter = active;
    setKeys(false);
    if ("speechSynthesis" in window) window.speechSynthesis.cancel();
    line(key === "-" ? "(no key pressed)" : `You pressed ${key}`, null, "you");
    status.textContent = "…";
    try {
      show(await post(`/try/api/calls/${callId}/keys`, { key }));
    } catch (error) {
      status.textContent = `The call failed: ${error.message}`;
      callId = null;
      document.getElementById("call").disabled = false;
    }
  }

  keys.forEach((k) => k.addEventListener("click", () => press(k.dataset.key)));
  document.addEventListener("keydown", (event) => {
    if (callId && /^[0-9*#]$/.test(event.key) && document.activeElement.tagName !== "INPUT") {
      press(event.key);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    transcript.replaceChildren();
    receipt.hidden = true;
    if (form.contains(document.activeElement)) focusAfter = keys[0];
    document.getElementById("call").disabled = true;
    status.textContent = "Calling…";
    try {
      const draft = document.getElementById("draft");
      const data = await post("/try/api/calls", {
        to: form.elements.to.value,
        from: form.elements.from.value,
        draft: Boolean(draft && draft.checked),
      });
      callId = data.id;
      show(data);
    } catch (error) {
      status.textContent = `Could not place the call: ${error.message}`;
      document.getElementById("call").disabled = false;
    }
  });
})();
