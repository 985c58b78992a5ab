// The sign-in page's second step with a passkey: asks the server for a challenge, has the
// browser's authenticator sign it, and sends the answer back. Loaded only on that page
// (the strict CSP allows no inline script).
"use strict";

function fromB64url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function post(body) {
  const r = await fetch("/login/passkey", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify(body),
  });
  const answer = await r.json();
  if (!r.ok) throw new Error(answer.error || "the server refused");
  return answer;
}

const button = document.getElementById("use-passkey");
const error = document.getElementById("passkey-error");
if (button) {
  button.addEventListener("click", async () => {
    const pending = button.dataset.pending;
    error.hidden = true;
    try {
      const options = await post({ pending });
      const pk = options.publicKey;
      pk.challenge = fromB64url(pk.challenge);
      for (const c of pk.allowCredentials || []) c.id = fromB64url(c.id);
      const cred = await navigator.credentials.get({ publicKey: pk });
      const done = await post({
        pending,
        response: {
          id: cred.id,
          rawId: toB64url(cred.rawId),
          type: cred.type,
          extensions: cred.getClientExtensionResults(),
          response: {
            authenticatorData: toB64url(cred.response.authenticatorData),
            clientDataJSON: toB64url(cred.response.clientDataJSON),
            signature: toB64url(cred.response.signature),
            userHandle: cred.response.userHandle ? toB64url(cred.response.userHandle) : null,
          },
        },
      });
      window.location.assign(done.redirect || "/");
    } catch (e) {
      error.textContent = "Passkey sign-in failed: " + (e && e.message ? e.message : e);
      error.hidden = false;
    }
  });
}
