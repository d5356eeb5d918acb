// Asks before sending a form whose effect cannot simply be taken back: <form data-confirm="Question?">, or
// <button data-confirm="..."> when only one of a form's buttons needs asking. Listens while capturing, before
// htmx (which sends its forms from their own submit listener) and before the browser's own submission;
// "Cancel" stops both.
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  var question = (button && button.getAttribute("data-confirm")) ||
    (event.target.getAttribute && event.target.getAttribute("data-confirm"));
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
