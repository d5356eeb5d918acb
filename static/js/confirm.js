// Asks before sending a form whose effect cannot simply be taken back: <form data-confirm="Question?">.
// Listens while capturing, before htmx (which sends its forms from their own submit listener) and before
// the browser's own submission; "Cancel" stops both.
document.addEventListener("submit", function (event) {
  var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
