// Irreversible steps ask first: a form with data-confirm="…" submits only after the person agrees,
// and its buttons are disabled once it is on its way, so a double click sends it once. Without this
// script the form still works; the server refuses a second submission by the batch's state.
(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // A page script that sends the form itself (the counter) prevented the default: leave its buttons.
    if (!event.defaultPrevented && form.method.toLowerCase() === "post") {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    }
  });
  // Back/forward cache: a page restored as it was left must not keep the buttons it disabled.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[method=post] button[type=submit]:disabled").forEach(function (b) {
      b.disabled = false;
    });
  });
})();
