// carebus ops console: the confirm step of every action, and who is acting.
// No build step, no library: forms marked data-confirm open the confirm dialog; on
// "Confirm" the actor (remembered in this browser) and confirmed=yes are filled in and the
// form is sent. The server refuses an action without both.
"use strict";

(function () {
  const ACTOR_KEY = "carebus.actor";
  let pending = null;

  function remembered() {
    try { return window.localStorage.getItem(ACTOR_KEY) || ""; } catch (e) { return ""; }
  }

  function remember(actor) {
    try { window.localStorage.setItem(ACTOR_KEY, actor); } catch (e) { /* private mode */ }
  }

  function ask(form) {
    const dialog = document.getElementById("confirm-dialog");
    document.getElementById("confirm-text").textContent = form.dataset.confirm;
    const actor = document.getElementById("confirm-actor");
    actor.value = remembered();
    pending = form;
    dialog.showModal();
    actor.focus();
  }

  function confirmed() {
    const actor = document.getElementById("confirm-actor").value.trim();
    if (!pending || !actor) { return false; }
    remember(actor);
    pending.elements.namedItem("actor").value = actor;
    pending.elements.namedItem("confirmed").value = "yes";
    const form = pending;
    pending = null;
    form.submit();
    return true;
  }

  document.addEventListener("DOMContentLoaded", function () {
    const dialog = document.getElementById("confirm-dialog");
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (form.reportValidity()) { ask(form); }
      });
    });
    document.getElementById("confirm-ok").addEventListener("click", function (event) {
      event.preventDefault();
      if (confirmed()) { dialog.close("confirm"); }
      else { document.getElementById("confirm-actor").reportValidity(); }
    });
    dialog.addEventListener("close", function () { pending = null; });
  });
})();
