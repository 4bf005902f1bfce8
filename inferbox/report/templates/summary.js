// Filters: show the failures and test rows whose outcome and suite are ticked and whose id contains the text.
(function () {
  const form = document.getElementById("filters");
  const items = Array.from(document.querySelectorAll(".filterable"));
  const rows = items.filter((el) => el.tagName === "TR");
  const shown = document.getElementById("shown");
  function ticked(name) {
    return new Set(Array.from(form.querySelectorAll(`input[name=${name}]:checked`)).map((el) => el.value));
  }
  function apply() {
    const outcomes = ticked("outcome");
    const suites = ticked("suite");
    const text = form.querySelector("input[name=text]").value.trim().toLowerCase();
    for (const el of items) {
      el.hidden = !(outcomes.has(el.dataset.outcome) && suites.has(el.dataset.suite) &&
                    el.dataset.id.toLowerCase().includes(text));
    }
    shown.textContent = `showing ${rows.filter((el) => !el.hidden).length} of ${rows.length} tests`;
  }
  form.addEventListener("input", apply);
  // A click on an outcome badge in the header shows only that outcome.
  for (const badge of document.querySelectorAll("#counts .badge[data-outcome]")) {
    badge.style.cursor = "pointer";
    badge.addEventListener("click", () => {
      for (const box of form.querySelectorAll("input[name=outcome]")) box.checked = box.value === badge.dataset.outcome;
      apply();
      document.getElementById("tests").scrollIntoView();
    });
  }
  apply();
})();
