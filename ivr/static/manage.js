"use strict";
// The script editor: lint and preview as you type, and listen to the consent prompt.
(() => {
  const context = JSON.parse(document.getElementById("script-context").textContent);
  const text = document.getElementById("text");
  const lint = document.getElementById("lint");
  const preview = document.getElementById("preview");
  const twiml = document.getElementById("twiml");
  const publish = document.getElementById("publish");
  let timer = null;
  let spokenConsent = context.consent;

  function render(data) {
    lint.replaceChildren();
    const problems = data.problems;
    if (problems.length === 0) {
      const li = document.createElement("li");
      li.className = "ok";
      li.textContent = "No problems: this script meets the WhatsApp opt-in policy.";
      lint.append(li);
    }
    for (const problem of problems) {
      const li = document.createElement("li");
      li.className = problem.startsWith("error") ? "error" : "warning";
      li.textContent = problem;
      lint.append(li);
    }
    if (publish) publish.disabled = problems.some((p) => p.startsWith("error"));
    preview.replaceChildren();
    for (const [name, spoken] of Object.entries(data.preview)) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = spoken;
      preview.append(dt, dd);
    }
    twiml.textContent = data.twiml;
    spokenConsent = data.preview.consent || "";
  }

  async function check() {
    const response = await fetch("/manage/api/lint", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": context.csrf },
      body: JSON.stringify({ business: context.business, locale: context.locale, text: text.value }),
    });
    if (response.ok) render(await response.json());
  }

  text.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  });

  document.getElementById("listen").addEventListener("click", async () => {
    const response = await fetch("/manage/api/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": context.csrf },
      body: JSON.stringify({ text: spokenConsent, locale: context.locale }),
    });
    if (response.ok) {
      new Audio(URL.createObjectURL(await response.blob())).play();
    } else if ("speechSynthesis" in window) {
      const utterance = new SpeechSynthesisUtterance(spokenConsent);
      utterance.lang = context.locale;
      window.speechSynthesis.speak(utterance);
    }
  });
})();
