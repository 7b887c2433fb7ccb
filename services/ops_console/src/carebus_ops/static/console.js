// carebus ops console: the confirm step of every action.
// No build step, no library: forms marked data-confirm open the confirm dialog; on
// "Confirm" confirmed=yes is filled in and the form is sent. The server refuses an action
// without it; who acts is the signed-in person (the session), not anything the page sends.
"use strict";

(function () {
  let pending = null;

  function ask(form) {
    const dialog = document.getElementById("confirm-dialog");
    document.getElementById("confirm-text").textContent = form.dataset.confirm;
    pending = form;
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  }

  function confirmed() {
    if (!pending) { return false; }
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
    });
    dialog.addEventListener("close", function () { pending = null; });
  });
})();
