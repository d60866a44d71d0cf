// Campus admin: progressive enhancements only; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
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

  // Say that an upload is in progress (large CSV files take a moment).
  var form = document.getElementById("import-form");
  var progress = document.getElementById("upload-progress");
  if (form && progress) {
    form.addEventListener("submit", function () {
      progress.textContent = "Uploading and checking the file…";
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
    });
  }
});
