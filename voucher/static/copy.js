// A copy button for text shown once (a new terminal token): <button data-copy-from="ID" hidden> copies
// the text of the element with that id, and the status beside it (role=status, aria-live=polite) says
// 已复制, so a screen reader hears it too. The button is hidden until this script runs: without it the text
// is still on the page to select by hand. It is a real <button>, so Tab and Enter or Space reach it.
(function () {
  function statusFor(button) {
    var row = button.parentElement;
    return row ? row.querySelector(".copy-status") : null;
  }

  function say(button, text) {
    var status = statusFor(button);
    if (!status) { return; }
    // Emptied first, so saying the same words twice is announced twice.
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  // For a browser without the asynchronous clipboard (or a page not served over a secure origin).
  function copyBySelection(source) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    return done;
  }

  document.querySelectorAll("button[data-copy-from]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy-from"));
    if (!source) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = source.textContent.trim();
      var failed = function () {
        say(button, copyBySelection(source) ? "已复制" : "复制失败：令牌已选中，请按 Ctrl+C（手机上长按）复制");
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { say(button, "已复制"); }, failed);
      } else {
        failed();
      }
    });
  });
})();
