// Billing Desk: the only script besides htmx. No inline scripts (CSP).
(function () {
  "use strict";
  function banner(text) {
    var el = document.getElementById("request-error");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }
  document.addEventListener("htmx:beforeRequest", function () { banner(""); });
  document.addEventListener("htmx:responseError", function (evt) {
    var status = evt.detail.xhr ? evt.detail.xhr.status : 0;
    banner(status >= 500
      ? "The server could not finish that (error " + status + "). Nothing you typed was lost; try again."
      : "That was not accepted (error " + status + ").");
  });
  document.addEventListener("htmx:sendError", function () {
    banner("The desk could not be reached. Check your connection; nothing you typed was lost.");
  });
})();
