// Campus admin: progressive enhancements only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // After a failed save, put the keyboard focus on the first field with an
  // error (its message is tied to it with aria-describedby, so a screen
  // reader reads both).
  var invalid = document.querySelector("form .is-invalid");
  if (invalid) {
    invalid.focus();
  }

  // "Select all" on the students list, with a live count for screen readers.
  var all = document.getElementById("select-all");
  var count = document.getElementById("selected-count");
  var rows = document.querySelectorAll("input.row-select");
  function update() {
    var n = 0;
    rows.forEach(function (r) { if (r.checked) { n++; } });
    if (count) { count.textContent = n ? n + " selected" : ""; }
    if (all) {
      all.checked = n > 0 && n === rows.length;
      all.indeterminate = n > 0 && n < rows.length;
    }
  }
  if (all) {
    all.addEventListener("change", function () {
      rows.forEach(function (r) { r.checked = all.checked; });
      update();
    });
  }
  rows.forEach(function (r) { r.addEventListener("change", update); });

  // The print view's button (no inline scripts: CSP).
  var printNow = document.getElementById("print-now");
  if (printNow) {
    printNow.addEventListener("click", function () { window.print(); });
  }

  // Forms that can take a while (uploading and checking a large CSV file,
  // importing thousands of rows) say so while the browser waits: the form's
  // data-busy text goes into its live status line, an animated bar appears,
  // and its buttons are disabled against a second submission.
  var busyForms = document.querySelectorAll("form[data-busy]");
  busyForms.forEach(function (form) {
    var text = form.querySelector(".form-busy-text");
    var bar = form.querySelector(".form-busy-bar");
    form.addEventListener("submit", function (ev) {
      if (ev.defaultPrevented || !text) {
        return;
      }
      text.textContent = form.getAttribute("data-busy");
      if (bar) { bar.hidden = false; }
      // Disable after the submission has read the pressed button's value.
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    });
  });
  // Coming back with the Back button shows the page as it was left: make
  // its forms usable again.
  window.addEventListener("pageshow", function (ev) {
    if (!ev.persisted) {
      return;
    }
    busyForms.forEach(function (form) {
      var text = form.querySelector(".form-busy-text");
      var bar = form.querySelector(".form-busy-bar");
      if (text) { text.textContent = ""; }
      if (bar) { bar.hidden = true; }
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; });
    });
  });
});
