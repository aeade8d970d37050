"use strict";
// The script editor: a form and a TOML view of one draft, checked as you type (each problem shown
// beside its box and on its line), saved as a draft as you type, and published after the changes
// are shown and confirmed. The server does every conversion and check (/manage/api/*).
(() => {
  const context = JSON.parse(document.getElementById("script-context").textContent);
  const editor = document.getElementById("editor");
  const text = document.getElementById("text");
  const formView = document.getElementById("form-view");
  const tomlView = document.getElementById("toml-view");
  const viewInput = document.getElementById("view");
  const advanced = document.getElementById("advanced");
  const switchLink = document.getElementById("switch-link");
  const publish = document.getElementById("publish");
  const publishStatus = document.getElementById("publish-status");
  const autosave = document.getElementById("autosave");
  const dialog = document.getElementById("confirm");
  const gutter = document.getElementById("gutter");
  let timer = null;
  let saveTimer = null;
  let sequence = 0;
  let dirty = false;
  let spokenConsent = context.consent;
  let badLines = new Set(context.bad_lines || []);
  const headers = { "Content-Type": "application/json", "X-CSRF-Token": context.csrf };
  // Every call to /manage/api/*: a JSON body, with the session's CSRF token.
  const postJson = (path, payload) => fetch(path, { method: "POST", headers, body: JSON.stringify(payload) });

  if (switchLink) switchLink.hidden = true; // the switch does it without a reload
  const fields = () =>
    Array.from(formView.querySelectorAll("[name]")).filter((el) => !el.disabled && !el.readOnly);

  function body(view) {
    const values = {};
    if (view === "form") for (const el of fields()) values[el.name] = el.value;
    return { business: context.business, locale: context.locale, view, text: text.value, fields: values };
  }

  function item(note, withLine) {
    const li = document.createElement("li");
    li.className = note.severity;
    if (withLine && note.line) {
      const go = document.createElement("button");
      go.type = "button";
      go.className = "link goto";
      go.dataset.line = note.line;
      go.textContent = `Line ${note.line}`;
      li.append(go, `: ${note.text}`);
    } else {
      li.textContent = note.text;
    }
    return li;
  }

  function showNotes(notes) {
    for (const list of document.querySelectorAll(".box-notes")) list.replaceChildren();
    for (const el of formView.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const note of notes) {
      const list = document.getElementById(`notes-${note.box}`);
      if (list) list.append(item(note, false));
      const control = document.getElementById(note.box);
      if (control && note.severity === "error") control.setAttribute("aria-invalid", "true");
    }
    const lint = document.getElementById("lint");
    lint.replaceChildren(...notes.map((n) => item(n, false)));
    const tomlNotes = document.getElementById("toml-notes");
    tomlNotes.replaceChildren(...notes.map((n) => item(n, true)));
    if (notes.length === 0) {
      const ok = document.createElement("li");
      ok.className = "ok";
      ok.textContent = "No problems: this script meets the WhatsApp opt-in policy.";
      lint.append(ok);
      tomlNotes.append(ok.cloneNode(true));
    }
    const blocking = notes.filter((n) => n.severity === "error");
    badLines = new Set(blocking.filter((n) => n.line).map((n) => n.line));
    numberLines();
    if (publish) {
      // aria-disabled, not disabled: the button stays reachable and says why it does not publish.
      publish.setAttribute("aria-disabled", blocking.length ? "true" : "false");
      publishStatus.className = blocking.length ? "error" : "ok";
      publishStatus.textContent = blocking.length
        ? `Publishing is blocked: ${blocking[0].text}` +
          (blocking.length > 1 ? ` (and ${blocking.length - 1} more in the policy check)` : "")
        : "Ready to publish.";
    }
  }

  function showPreview(data) {
    const preview = document.getElementById("preview");
    preview.replaceChildren();
    for (const [name, spoken] of Object.entries(data.preview)) {
      const dt = document.createElement("dt");
      const box = document.querySelector(`label[for="prompt-${name}"]`);
      dt.textContent = box ? box.textContent : name;
      const dd = document.createElement("dd");
      dd.textContent = spoken;
      preview.append(dt, dd);
      const said = document.querySelector(`#said-${name} .said-text`);
      if (said) said.textContent = spoken;
    }
    document.getElementById("twiml").textContent = data.twiml;
    spokenConsent = data.preview.consent || "";
  }

  function showForm(form) {
    if (!form) return;
    const values = { voice: form.voice, frequency: form.frequency };
    for (const [k, v] of Object.entries(form.keys)) values[`key.${k}`] = v;
    for (const [k, v] of Object.entries(form.prompts)) if (v !== null) values[`prompt.${k}`] = v;
    for (const [k, v] of Object.entries(form.type_names)) values[`type.${k}`] = v;
    for (const el of fields()) {
      if (el === document.activeElement || !(el.name in values)) continue;
      if (el.tagName === "SELECT" && !Array.from(el.options).some((o) => o.value === values[el.name])) {
        el.add(new Option(values[el.name], values[el.name]));
      }
      el.value = values[el.name];
    }
  }

  async function check(view, again = true) {
    const mine = ++sequence;
    const response = await postJson("/manage/api/lint", body(view));
    const data = await response.json();
    if (mine !== sequence) return null; // a newer check is on its way
    if (!response.ok) {
      publishStatus.textContent = data.error || "The check failed; try again.";
      return null;
    }
    const slow = data.notes.some((n) => n.rule === "renders" && n.box === "script");
    if (slow && again) {
      // Stopped at the deadline: a busy server, or a template that is too slow. Once more to tell.
      publishStatus.textContent = "The check took too long; checking again…";
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return mine === sequence ? check(view, false) : null;
    }
    if (view === "form" && text !== document.activeElement) text.value = data.text;
    if (view === "toml") showForm(data.form);
    numberLines();
    showNotes(data.notes);
    showPreview(data);
    return data;
  }

  async function save() {
    if (!context.can_edit) return;
    const response = await postJson("/manage/api/draft", body("toml"));
    const data = await response.json();
    if (response.ok) {
      dirty = false;
      autosave.textContent = data.saved
        ? `Draft saved at ${new Date().toLocaleTimeString()}; callers still hear version ${context.published_version}.`
        : data.message;
    } else {
      autosave.textContent = `Not saved: ${data.error}`;
    }
  }

  function changed(view) {
    dirty = true;
    autosave.textContent = "Unsaved changes";
    clearTimeout(timer);
    clearTimeout(saveTimer);
    timer = setTimeout(async () => {
      const data = await check(view);
      if (data) saveTimer = setTimeout(save, 1500);
    }, 300);
  }

  if (context.recheck) check(viewInput.value);
  formView.addEventListener("input", () => changed("form"));
  formView.addEventListener("change", (event) => {
    if (event.target.tagName === "SELECT") changed("form");
  });
  text.addEventListener("input", () => {
    numberLines();
    changed("toml");
  });

  formView.addEventListener("click", (event) => {
    const button = event.target.closest("button.insert");
    if (!button) return;
    const box = document.getElementById(button.dataset.target);
    const at = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? at;
    const before = box.value.slice(0, at);
    const space = before && !/\s$/.test(before) ? " " : "";
    const inserted = space + button.dataset.insert;
    box.value = before + inserted + box.value.slice(end);
    box.focus();
    box.setSelectionRange(at + inserted.length, at + inserted.length);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });

  function showView(view) {
    viewInput.value = view;
    formView.hidden = view !== "form";
    tomlView.hidden = view !== "toml";
    const url = new URL(window.location.href);
    url.searchParams.set("view", view);
    window.history.replaceState(null, "", url);
    if (view === "toml") numberLines();
  }
  advanced.addEventListener("change", () => showView(advanced.checked ? "toml" : "form"));

  function numberLines() {
    if (!gutter) return;
    const lines = text.value.split("\n").length;
    // Each line's number; a line with a problem is marked beside it (the list below says what).
    gutter.replaceChildren(
      ...Array.from({ length: lines }, (_, i) => {
        const line = document.createElement("span");
        const bad = badLines.has(i + 1);
        line.textContent = `${bad ? "\u25B6 " : ""}${i + 1}\n`;
        if (bad) line.className = "bad";
        return line;
      }),
    );
    gutter.scrollTop = text.scrollTop;
  }
  text.addEventListener("scroll", () => {
    gutter.scrollTop = text.scrollTop;
  });
  numberLines();

  tomlView.addEventListener("click", (event) => {
    const go = event.target.closest("button.goto");
    if (!go) return;
    const line = Number(go.dataset.line);
    const lines = text.value.split("\n");
    const at = lines.slice(0, line - 1).reduce((sum, l) => sum + l.length + 1, 0);
    text.focus();
    text.setSelectionRange(at, at + (lines[line - 1] || "").length);
    const height = text.scrollHeight / Math.max(lines.length, 1);
    text.scrollTop = Math.max(0, (line - 3) * height);
  });

  // Publishing: show what changes for callers, and ask.
  let confirmed = false;
  editor.addEventListener("submit", async (event) => {
    const action = event.submitter ? event.submitter.value : "";
    if (action !== "publish" || confirmed) {
      dirty = false;
      return;
    }
    event.preventDefault();
    clearTimeout(timer);
    const data = await check(viewInput.value);
    if (!data) return;
    if (data.blocked) {
      const first = data.notes.find((n) => n.severity === "error");
      publishStatus.textContent = `Not published: ${first.text}`;
      const control = document.getElementById(first.box);
      if (control && !control.closest("[hidden]")) control.focus();
      return;
    }
    const response = await postJson("/manage/api/changes", body("toml"));
    const changes = await response.json();
    const list = document.getElementById("confirm-changes");
    list.replaceChildren();
    const go = document.getElementById("confirm-publish");
    if (!response.ok) {
      list.textContent = changes.error;
      go.hidden = true;
    } else if (changes.same) {
      list.textContent = `Nothing to publish: this is the text callers already hear (version ${changes.version}).`;
      go.hidden = true;
    } else {
      go.hidden = false;
      if (changes.settings.length) {
        const settings = document.createElement("ul");
        for (const setting of changes.settings) {
          const li = document.createElement("li");
          li.textContent = `${setting.label}: ${setting.old} → ${setting.new}`;
          settings.append(li);
        }
        list.append(settings);
      }
      if (changes.prompts.length === 0 && changes.settings.length === 0) {
        list.textContent = "No prompt says anything different; only the script's layout changes.";
      }
      for (const prompt of changes.prompts) {
        const section = document.createElement("section");
        section.className = "change";
        const h = document.createElement("h3");
        h.textContent = prompt.label;
        const was = document.createElement("p");
        was.className = "was";
        // Built by the server from HTML-escaped words and <del>/<ins> only.
        was.innerHTML = `<span class="said-label">Now:</span> ${prompt.old}`;
        const will = document.createElement("p");
        will.className = "will";
        will.innerHTML = `<span class="said-label">After publishing:</span> ${prompt.new}`;
        section.append(h, was, will);
        list.append(section);
      }
    }
    dialog.showModal();
    (go.hidden ? document.getElementById("confirm-cancel") : go).focus();
  });
  document.getElementById("confirm-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("confirm-publish").addEventListener("click", () => {
    confirmed = true;
    dirty = false;
    const action = document.createElement("input");
    action.type = "hidden";
    action.name = "action";
    action.value = "publish";
    editor.append(action);
    dialog.close();
    editor.submit();
  });

  window.addEventListener("beforeunload", (event) => {
    if (!dirty) return;
    event.preventDefault();
    event.returnValue = "";
  });

  document.getElementById("listen").addEventListener("click", async () => {
    const response = await postJson("/manage/api/speech", { text: spokenConsent, locale: context.locale });
    if (response.ok) {
      new Audio(URL.createObjectURL(await response.blob())).play();
    } else if ("speechSynthesis" in window) {
      const utterance = new SpeechSynthesisUtterance(spokenConsent);
      utterance.lang = context.locale;
      window.speechSynthesis.speak(utterance);
    }
  });
})();
