// On a phone the filters start folded, so the first rows show on the first screen; the search stays, and
// filters in use keep them open. Loaded right after the filters (not deferred), so they never flash open.
(function () {
  if (!window.matchMedia("(max-width: 640px)").matches) return;
  for (const details of document.querySelectorAll("details.more-filters:not([data-in-use])")) {
    details.open = false;
  }
})();
