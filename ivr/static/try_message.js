"use strict";
// The browser phone's "Send a WhatsApp message" box: posts to /try/api/messages, which sends the
// message server-side through the real, signed /twilio/messaging webhook, and shows the replies.
(() => {
  const form = document.getElementById("message-form");
  if (!form) return;
  const status = document.getElementById("message-status");
  const replies = document.getElementById("message-replies");
  const send = document.getElementById("message-send");

  function add(text, cls) {
    const item = document.createElement("li");
    item.className = cls;
    item.textContent = text; // never HTML: replies name businesses, which come from outside
    replies.appendChild(item);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = document.getElementById("message-body").value;
    send.disabled = true;
    status.textContent = "Sending…";
    add(`You: ${body}`, "sent");
    try {
      const response = await fetch("/try/api/messages", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          to: document.getElementById("message-to").value,
          from: document.getElementById("message-from").value,
          body,
        }),
      });
      const data = await response.json();
      if (!response.ok) {
        status.textContent = `Not sent: ${data.error}`;
        return;
      }
      for (const text of data.replies) add(`${document.getElementById("message-to").selectedOptions[0].text.split(" (")[0]}: ${text}`, "reply");
      if (!data.replies.length) add("(no reply: not a keyword, so nothing was recorded)", "note");
      status.textContent = data.receipt
        ? `Recorded ${data.receipt.action} by ${data.receipt.channel}, record hash ${data.receipt.record_hash.slice(0, 16)}…`
        : "Nothing was recorded.";
    } catch (error) {
      status.textContent = `Not sent: ${error}`;
    } finally {
      send.disabled = false;
      document.getElementById("message-body").focus();
    }
  });
})();
