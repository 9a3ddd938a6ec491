"""axe-core (WCAG 2 A/AA rules and best practices) run in a page as it is now, at the two
window sizes the app is made for, light and dark.

axe-core comes from the npm registry, pinned in tests/js/package-lock.json; ``make test``
installs it (scripts/install-js-deps). It is injected with Playwright: the page's CSP
forbids inline scripts, so the context that audits must bypass it (``bypass_csp=True``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import skip_unless

AXE_SCRIPT = Path(__file__).resolve().parent.parent / "js/node_modules/axe-core/axe.min.js"
#: The impacts that fail a test (axe's two highest of four).
BLOCKING = ("serious", "critical")
#: The window sizes audited: a laptop, and a phone held upright.
SIZES = (("1280×800", {"width": 1280, "height": 800}), ("390×844", {"width": 390, "height": 844}))
SCHEMES = ("light", "dark")

_RUN = """async (blocking) => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations.filter((v) => blocking.includes(v.impact)).flatMap((v) =>
    v.nodes.map((n) => ({ rule: v.id, impact: v.impact, help: v.help, target: n.target.join(" "),
      html: n.html.slice(0, 200), summary: (n.failureSummary || "").replace(/\\s+/g, " ") })));
}"""


def requires_axe() -> Path:
    """axe-core's script, or skip (a failure under CI=true) when it is not installed."""
    skip_unless(AXE_SCRIPT.is_file(),
                "needs axe-core from npm: make test installs it (npm ci in tests/js)")
    return AXE_SCRIPT


def audit(page: Any, where: str) -> list[str]:
    """Serious and critical violations in ``page`` as it is now, at both sizes, light and
    dark: one line each, naming the view, the rule and the element. The page is left at
    its size before, light."""
    found: list[str] = []
    before = page.viewport_size
    for size_name, size in SIZES:
        page.set_viewport_size(size)
        for scheme in SCHEMES:
            # No transition caught halfway (a border colour between two states).
            page.emulate_media(color_scheme=scheme, reduced_motion="reduce")
            if not page.evaluate("typeof window.axe === 'object'"):
                page.add_script_tag(path=str(requires_axe()))
            for v in page.evaluate(_RUN, list(BLOCKING)):
                found.append(
                    f"{where} at {size_name}, {scheme}: {v['rule']} ({v['impact']}: {v['help']})"
                    f" on {v['target']}: {v['html']} — {v['summary']}"
                )
    page.set_viewport_size(before)
    page.emulate_media(color_scheme="light", reduced_motion="reduce")
    return found
