// govern's only script: progressive enhancements, no inline code (the CSP forbids it).
(function () {
  "use strict";

  // Setup links carry the one-time secret in the fragment (#token=...), which is never sent to
  // the server. Move it into the form and wipe it from the address bar and history.
  // The policy's one-time acknowledgement link (#ack-form) works the same way.
  function fillSetupToken() {
    var form = document.getElementById("setup-form") || document.getElementById("ack-form");
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

  // <input data-person-picker="/people/pick">: a search-as-you-type combobox (WAI-ARIA combobox
  // pattern with a listbox popup). Typing asks the server for matching colleagues; arrow keys move,
  // Enter picks (the field gets the person's email, which every such form accepts), Escape closes.
  // Without this script the field is the plain email / employee id field it always was.
  var pickerCount = 0;

  function wirePersonPickers() {
    document.querySelectorAll("input[data-person-picker]").forEach(function (input) {
      var url = input.getAttribute("data-person-picker");
      var id = "person-picker-" + (++pickerCount);
      var list = document.createElement("ul");
      list.id = id;
      list.className = "picker-list";
      list.setAttribute("role", "listbox");
      list.hidden = true;
      var status = document.createElement("span");
      status.className = "sr-only";
      status.setAttribute("role", "status");
      var wrap = document.createElement("div");
      wrap.className = "picker";
      input.parentNode.insertBefore(wrap, input);
      wrap.appendChild(input);
      wrap.appendChild(list);
      wrap.appendChild(status);
      input.setAttribute("role", "combobox");
      input.setAttribute("aria-autocomplete", "list");
      input.setAttribute("aria-expanded", "false");
      input.setAttribute("aria-controls", id);
      var options = [];
      var active = -1;
      var timer = null;
      var asked = 0;

      function close() {
        list.hidden = true;
        input.setAttribute("aria-expanded", "false");
        input.removeAttribute("aria-activedescendant");
        active = -1;
      }

      function highlight(index) {
        options.forEach(function (li, k) { li.setAttribute("aria-selected", k === index ? "true" : "false"); });
        active = index;
        if (index >= 0) {
          input.setAttribute("aria-activedescendant", options[index].id);
          options[index].scrollIntoView({block: "nearest"});
        } else {
          input.removeAttribute("aria-activedescendant");
        }
      }

      function choose(index) {
        if (index < 0 || index >= options.length) return;
        input.value = options[index].getAttribute("data-value");
        close();
      }

      function show(people, more) {
        list.textContent = "";
        options = people.map(function (p, k) {
          var li = document.createElement("li");
          li.id = id + "-" + k;
          li.setAttribute("role", "option");
          li.setAttribute("aria-selected", "false");
          li.setAttribute("data-value", p.email);
          var name = document.createElement("span");
          name.className = "picker-name";
          name.textContent = p.name;
          var detail = document.createElement("span");
          detail.className = "picker-detail";
          detail.textContent = [p.email, p.employee_id, p.department].filter(Boolean).join(" · ");
          li.appendChild(name);
          li.appendChild(detail);
          // mousedown, not click: it comes before the field's blur closes the list.
          li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(k); });
          list.appendChild(li);
          return li;
        });
        if (!options.length) {
          close();
          status.textContent = "No active colleague matches.";
          return;
        }
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        active = -1;
        status.textContent = options.length + (more ? "+" : "") + " match" + (options.length === 1 ? "" : "es") + ", use the arrow keys.";
      }

      function search() {
        var q = input.value.trim();
        if (q.length < 2) { close(); return; }
        var ticket = ++asked;
        fetch(url + "?q=" + encodeURIComponent(q), {credentials: "same-origin", headers: {"Accept": "application/json"}})
          .then(function (response) { return response.ok ? response.json() : {people: []}; })
          .then(function (data) { if (ticket === asked) show(data.people || [], data.more); })
          .catch(function () { close(); });
      }

      input.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(search, 150);
      });
      input.addEventListener("keydown", function (event) {
        var open = !list.hidden && options.length > 0;
        if (event.key === "ArrowDown") {
          event.preventDefault();
          if (!open) { search(); return; }
          highlight(active + 1 >= options.length ? 0 : active + 1);
        } else if (event.key === "ArrowUp") {
          if (!open) return;
          event.preventDefault();
          highlight(active <= 0 ? options.length - 1 : active - 1);
        } else if (event.key === "Enter") {
          if (open && active >= 0) { event.preventDefault(); choose(active); }
        } else if (event.key === "Escape") {
          if (open) { event.preventDefault(); close(); }
        }
      });
      input.addEventListener("blur", function () { setTimeout(close, 100); });
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
    wirePersonPickers();
  });
})();
