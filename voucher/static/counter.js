// Counter page: a USB scanner types the code and presses Enter. Enter in the code box moves to the
// amount box (unless an amount is already there); Enter in the amount box submits, but never while the
// amount box is empty. Without this script the form still works: Enter submits and the server asks for
// whatever is missing.
//
// After every answer (a success or any refusal) the server renders the amount box empty and this script
// never puts an amount back: the next customer's scan + Enter lands in the code box and moves to an empty
// amount box, so it cannot be redeemed at the previous customer's amount.
(function () {
  var form = document.getElementById("redeem-form");
  if (!form) { return; }
  var code = form.querySelector("[name=code]");
  var amount = form.querySelector("[name=order_amount]");
  var submitted = false;

  function amountEmpty() { return amount.value.trim() === ""; }

  function readyForNextScan() {
    // The code box is selected, so the next scan replaces a refused code rather than appending to it.
    amount.value = "";
    code.focus();
    code.select();
  }

  form.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.isComposing) { return; }
    if (event.target === code && amountEmpty()) {
      event.preventDefault();
      amount.focus();
    } else if (event.target === amount && amountEmpty()) {
      event.preventDefault();  // a scanner's extra Enter, or a second scan: nothing to submit yet
    }
  });
  form.addEventListener("submit", function (event) {
    // A double tap must not send two requests (the server would answer the second from its first result anyway).
    if (submitted) { event.preventDefault(); return; }
    submitted = true;
  });
  // Back/forward cache: a page restored as it was left must not keep an amount or a spent submit.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      submitted = false;
      readyForNextScan();
    }
  });
  readyForNextScan();
})();
