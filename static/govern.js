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

  document.addEventListener("DOMContentLoaded", function () {
    fillSetupToken();
    wireCopyButtons();
    wireConfirmButtons();
  });
})();
