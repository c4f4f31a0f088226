// Passkeys (WebAuthn): turn the server's options (JSON, binary fields in base64url) into what the
// browser's credentials API takes, and its answer back into JSON for the form's hidden field.
(function () {
  "use strict";

  function toBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    const raw = atob(b64);
    const out = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toText(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i += 1) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    (options.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    (options.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return options;
  }

  function answer(credential) {
    const r = credential.response;
    const out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(r.clientDataJSON) },
    };
    if (r.attestationObject) {
      out.response.attestationObject = toText(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(r.authenticatorData);
      out.response.signature = toText(r.signature);
      out.response.userHandle = r.userHandle ? toText(r.userHandle) : null;
    }
    return out;
  }

  function explain(error) {
    if (error && error.name === "NotAllowedError") return "Cancelled, or no passkey answered in time. Try again.";
    if (error && error.name === "InvalidStateError") return "This authenticator holds a passkey for govern already.";
    if (error && error.name === "SecurityError") return "This page is not on govern's own address, so the passkey cannot be used here.";
    return "The passkey did not work: " + ((error && error.message) || error);
  }

  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    const button = form.querySelector("[data-passkey-start]");
    const status = form.querySelector("[data-passkey-status]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      status.textContent = "This browser cannot use passkeys.";
      button.disabled = true;
      return;
    }
    button.addEventListener("click", function () {
      const name = form.querySelector("input[name=name]");
      if (name && !name.value.trim()) {
        status.textContent = "Give the passkey a name first.";
        name.focus();
        return;
      }
      const options = JSON.parse(form.dataset.options);
      const creating = form.dataset.passkey === "create";
      button.disabled = true;
      status.textContent = "Follow your browser's prompt…";
      const ask = creating
        ? navigator.credentials.create({ publicKey: creationOptions(options) })
        : navigator.credentials.get({ publicKey: requestOptions(options) });
      ask.then(function (credential) {
        form.querySelector("input[name=credential]").value = JSON.stringify(answer(credential));
        status.textContent = "Checking…";
        form.submit();
      }).catch(function (error) {
        button.disabled = false;
        status.textContent = explain(error);
      });
    });
  });
})();
