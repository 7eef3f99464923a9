// Campaign editor: show only the fieldsets that apply to the chosen instrument. Without this script
// every fieldset shows, and the server ignores the ones that do not apply.
(function () {
  var select = document.getElementById("instrument");
  if (!select) { return; }
  var sets = document.querySelectorAll("fieldset[data-for]");
  function sync() {
    sets.forEach(function (set) {
      set.hidden = set.getAttribute("data-for").split(" ").indexOf(select.value) === -1;
    });
  }
  select.addEventListener("change", sync);
  sync();
})();
