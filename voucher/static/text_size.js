// 大字模式 (large text, 适老化) switched in place: the choice is sent in the background and the page's
// class changes at once, so a half-typed phone number or code stays where it is. Without this script
// (or if the request fails) the form posts as usual and the page comes back with the new size.
(function () {
  document.querySelectorAll("form[data-text-size]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var sizeInput = form.querySelector("input[name=size]");
      var size = sizeInput.value;
      window.fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: {"X-Requested-With": "fetch"}
      }).then(function (response) {
        if (response.status !== 204) { form.submit(); return; }
        var large = size === "large";
        document.documentElement.classList.toggle("large-text", large);
        sizeInput.value = large ? "normal" : "large";
        var button = form.querySelector("button");
        button.setAttribute("aria-pressed", large ? "true" : "false");
        button.querySelector(".state").textContent = large ? "开" : "关";
      }).catch(function () { form.submit(); });
    });
  });
})();
