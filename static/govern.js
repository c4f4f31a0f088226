// govern's only script: progressive enhancements, no inline code (the CSP forbids it).
(function () {
  "use strict";

  // Setup links carry the one-time secret in the fragment (#token=...), which is never sent to
  // the server. Move it into the form and wipe it from the address bar and history.
  function fillSetupToken() {
    var form = document.getElementById("setup-form");
    if (!form || !window.location.hash) return;
    var match = window.location.hash.match(/token=([A-Za-z0-9_-]+)/);
    if (!match) return;
    var input = form.querySelector("input[name=token]");
    if (input) input.value = match[1];
    history.replaceState(null, "", window.location.pathname);
  }

  function wireCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) return;
        navigator.clipboard.writeText(source.innerText.trim()).then(function () {
          var label = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });
  }

  function wireConfirmButtons() {
    document.querySelectorAll("[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // A revealed secret hides itself after data-hide-after seconds: the text leaves the page.
  function hideRevealedSecrets() {
    document.querySelectorAll("[data-reveal]").forEach(function (box) {
      var seconds = parseInt(box.getAttribute("data-hide-after"), 10) || 30;
      setTimeout(function () { hideBox(box); }, seconds * 1000);
    });
  }

  function hideBox(box) {
    box.textContent = "";
    box.hidden = true;
    var note = document.querySelector("[data-hidden-note]");
    if (note) note.hidden = false;
  }

  // A live 2FA code counts down, is replaced by the next code the server sent, then hides.
  // The page never holds the seed, only these two codes.
  function runTotpCountdown() {
    var code = document.querySelector("[data-totp]");
    if (!code) return;
    var counter = document.querySelector("[data-countdown]");
    var left = parseInt(code.getAttribute("data-seconds-left"), 10) || 30;
    var period = parseInt(code.getAttribute("data-period"), 10) || 30;
    var nextCode = code.getAttribute("data-next");
    code.removeAttribute("data-next");
    var switched = false;
    var timer = setInterval(function () {
      left -= 1;
      if (left <= 0) {
        if (switched || !nextCode) {
          clearInterval(timer);
          var box = code.closest("[data-reveal]");
          if (box) hideBox(box);
          return;
        }
        code.textContent = nextCode;
        nextCode = null;
        switched = true;
        left = period;
      }
      if (counter) counter.textContent = String(left);
    }, 1000);
  }

  // <button data-generate="/vault/generate?account=7" data-target="#value" data-info="#gen-info">:
  // fills the target field with a password fitting the account's platform rules.
  function wireGenerateButtons() {
    document.querySelectorAll("[data-generate]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        event.preventDefault();
        var target = document.querySelector(button.getAttribute("data-target"));
        var form = button.closest("form");
        var token = form ? form.querySelector("input[name=csrf_token]") : null;
        if (!target || !token) return;
        fetch(button.getAttribute("data-generate"), {
          method: "POST", credentials: "same-origin", cache: "no-store",
          headers: {"X-CSRFToken": token.value, "Accept": "application/json"}
        }).then(function (response) { return response.json(); }).then(function (data) {
          var info = document.querySelector(button.getAttribute("data-info") || "#none");
          if (data.password) {
            target.value = data.password;
            // Shown, so it can be copied to the platform before it is stored.
            if (target.type === "password") target.type = "text";
            if (info) info.textContent = data.length + " characters, " + Math.floor(data.entropy_bits) + " bits. " + (data.rules || "");
          } else if (info) {
            info.textContent = data.error || "No password could be generated.";
          }
        });
      });
    });
  }

  // The menu's groups (<details>) work without script; this closes an open one when another opens,
  // on a click elsewhere and on Escape, as menus do. On a phone the menu folds behind its Menu button.
  function wireMenu() {
    var groups = document.querySelectorAll(".nav-group");
    function closeAll(except) {
      groups.forEach(function (group) { if (group !== except) group.open = false; });
    }
    groups.forEach(function (group) {
      group.addEventListener("toggle", function () { if (group.open) closeAll(group); });
    });
    document.addEventListener("click", function (event) {
      if (!event.target.closest || !event.target.closest(".nav-group")) closeAll(null);
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") return;
      var open = document.querySelector(".nav-group[open]");
      if (open) { open.open = false; open.querySelector("summary").focus(); }
    });
    var button = document.querySelector(".menu-button");
    var topbar = document.querySelector(".topbar");
    if (!button || !topbar) return;
    topbar.classList.add("menu-folds");
    button.hidden = false;
    button.addEventListener("click", function () {
      var open = topbar.classList.toggle("menu-open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    wireMenu();
    fillSetupToken();
    wireCopyButtons();
    wireConfirmButtons();
    hideRevealedSecrets();
    runTotpCountdown();
    wireGenerateButtons();
  });
})();
