// Admin pages: a "Copy" button next to a password shown once (ivr/templates/manage_users.html).
"use strict";
(function () {
  const button = document.getElementById("copy-password");
  const password = document.getElementById("password");
  const said = document.getElementById("copy-status");
  if (!button || !password || !said) return;
  button.hidden = false;
  button.addEventListener("click", async function () {
    try {
      await navigator.clipboard.writeText(password.textContent);
      said.textContent = "Copied. It is not shown again once you leave this page.";
    } catch (error) {
      // No clipboard (an insecure origin, or refused): select it so Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents(password);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      said.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy it.";
    }
  });
})();
