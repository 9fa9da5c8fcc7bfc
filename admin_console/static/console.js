/* 管理后台: keyboard shortcuts and small enhancements. No inline scripts (strict CSP). */
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function items() {
    return Array.prototype.slice.call(document.querySelectorAll(".mod-item:not(.done)"));
  }

  function move(current, step) {
    var list = items();
    if (!list.length) { return; }
    var index = list.indexOf(current);
    var next = list[Math.max(0, Math.min(list.length - 1, index + step))] || list[0];
    next.focus();
  }

  /* Moderation queue: one key per action inside the focused item (shown as <kbd> on buttons). */
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var item = event.target.closest ? event.target.closest(".mod-item") : null;
    var key = event.key.toLowerCase();
    if (key === "j" || key === "k") {
      if (!document.querySelector(".mod-item")) { return; }
      event.preventDefault();
      move(item, key === "j" ? 1 : -1);
      return;
    }
    if (!item) { return; }
    var button = item.querySelector('[data-key="' + key + '"]');
    if (!button) { return; }
    event.preventDefault();
    var needs = button.getAttribute("data-needs");
    if (needs) {
      var field = item.querySelector(needs);
      if (field && !field.value && field.type !== "radio") { field.focus(); return; }
      if (field && field.type === "radio" && !item.querySelector(needs + ":checked")) {
        field.focus();
        return;
      }
    }
    button.click();
  });

  /* After an htmx swap of a moderation item, keep the keyboard user in the queue. */
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.classList && target.classList.contains("mod-item")) {
      var list = items();
      if (list.length) { list[0].focus(); }
    }
  });

  /* The first field with an error gets the focus. */
  document.addEventListener("DOMContentLoaded", function () {
    var bad = document.querySelector('[aria-invalid="true"]');
    if (bad) { bad.focus(); }
    var first = document.querySelector(".mod-item");
    if (first && !bad) { first.focus(); }
  });
})();
