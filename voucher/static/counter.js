// Counter page: a USB scanner types the code and presses Enter. Enter in the code box moves to the
// amount box (unless an amount is already there); Enter in the amount box submits. Without this
// script the form still works: Enter submits and the server asks for whatever is missing.
(function () {
  var form = document.getElementById("redeem-form");
  if (!form) { return; }
  var code = form.querySelector("[name=code]");
  var amount = form.querySelector("[name=order_amount]");
  var submitted = false;
  code.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && amount.value.trim() === "") {
      event.preventDefault();
      amount.focus();
    }
  });
  form.addEventListener("submit", function (event) {
    // A double tap must not send two requests (the server would answer the second from its first result anyway).
    if (submitted) { event.preventDefault(); return; }
    submitted = true;
  });
  // After a refusal the field to fix is selected, so the next scan or entry replaces it rather than
  // appending to it; after a success the form is empty and the code box waits for the next scan.
  var target = form.getAttribute("data-focus") === "order_amount" ? amount : code;
  target.focus();
  target.select();
})();
