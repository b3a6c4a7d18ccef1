"""The HTML report of real runs, opened in headless Chromium.

Three real ``adamconf run``s (subprocesses, a few seconds each) over small numpy
adapters from tests/numpy_adam.py: a baseline in which ``third.buggy`` is a correct Adam,
a run in which it multiplies every update by 1 + 1e-5 (a planted bug its mean-error check
decides) beside an adapter named ``<img src=x onerror=alert(1)>``, and a run of the example
adapter of the README that takes its fingerprint (``--fingerprint``) and writes its own report
(``--html``); and a real ``adamconf fingerprint torch.adam --results`` (when torch is installed).
``adamconf report`` merges the runs and the fingerprints file against the baseline; the page is
opened in Debian's ``chromium`` driven by Playwright (``executable_path``: Playwright's own
browser download is not used) and checked as a reader sees it: the dialect view with detected
values, the porting pairs, the matrix, a failure's plot of the check that decided it, the
baseline section, an implementation's section; the hostile name is text and fires no dialog;
the page requests nothing but ``file:`` and ``data:`` URLs.

Skips, saying why, without chromium (``apt-get install chromium``) or Playwright
(``pip install playwright``); ``tox -e browser`` installs Playwright. With
``ADAMCONF_SCREENSHOT=path.png`` set it saves a screenshot of the report (docs/report.png).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright "
                                                             "(or tox -e browser)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium "
                                                         "(Debian's package; Playwright's download is not used)")

ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent
HOSTILE = "<img src=x onerror=alert(1)>"
ADAPTERS = f'''
import sys

sys.path.insert(0, {str(TESTS_DIR)!r})
from numpy_adam import NumpyAdapter


class BuggyBefore(NumpyAdapter):
    """third.buggy as it was: a correct Adam in the pytorch dialect."""

    def __init__(self):
        super().__init__("pytorch")
        self.name = "third.buggy"


class Buggy(NumpyAdapter):
    """third.buggy now: every update multiplied by 1 + 1e-5."""

    def __init__(self):
        super().__init__("pytorch", "scale_1e-5")
        self.name = "third.buggy"


class Hostile(NumpyAdapter):
    def __init__(self):
        super().__init__("pytorch")
        self.name = {HOSTILE!r}
'''
SCENARIOS = ["--scenario", "dense-dyadic", "--scenario", "dense-first-steps", "--dtype", "float32"]


def _adamconf(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, "-m", "adamconf", *args], cwd=cwd, capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode in (0, 1), completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("browser")
    (work / "third.py").write_text(ADAPTERS)
    _adamconf("run", "--adapter", "third.py:BuggyBefore", *SCENARIOS, "--results", "baseline.json", cwd=work)
    run = _adamconf("run", "--adapter", "third.py:Buggy", "--adapter", "third.py:Hostile", *SCENARIOS,
                    "--results", "now.json", cwd=work)
    assert run.returncode == 1  # the planted bug fails
    example = ROOT / "docs" / "examples" / "numpy_adapter.py"
    run = _adamconf("run", "--adapter", f"{example}:NumpyAdam", "--scenario", "dense-first-steps",
                    "--scenario", "amsgrad-dyadic", "--fingerprint", "--results", "example.json",
                    "--html", "example.html", cwd=work)
    assert run.returncode == 0 and "report written to example.html" in run.stdout
    assert "--fingerprint: 1 adapter(s) fingerprinted" in run.stdout
    assert (work / "example.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    inputs = ["now.json", "example.json"]
    if importlib.util.find_spec("torch") is not None:  # a real framework's fingerprint, from a file
        _adamconf("fingerprint", "torch.adam", "--results", "fp.json", "--label", "fingerprint-box", cwd=work)
        inputs.append("fp.json")
    made = _adamconf("report", *inputs, "--baseline", "baseline.json", "-o", "report.html",
                     "--title", "adamconf report: a planted bug against its baseline", cwd=work)
    assert "fingerprint(s) from 1 file(s)" in made.stdout or "fp.json" not in inputs
    return work / "report.html"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_the_report_of_real_runs_reads_right_in_chromium(report, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1700})
    requests, dialogs, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report.as_uri(), wait_until="load")

    # the dialect view: claimed and detected values (run --fingerprint of the example; torch.adam from a file)
    assert page.locator("#dialects table.dialects").is_visible()
    assert page.locator("#dialects table.dialects").get_by_text("third.buggy").is_visible()
    example_row = page.locator("#dialects table.dialects tr", has_text="example.numpy_adam")
    detected = example_row.locator("td.dcell .detected")
    assert detected.first.is_visible() and detected.first.inner_text() == "standard"  # epsilon, detected
    assert example_row.locator("td.dcell .claimed").first.inner_text() == "standard"
    assert "detected: " in example_row.locator("th").inner_text()
    if importlib.util.find_spec("torch") is not None:
        torch_row = page.locator("#dialects table.dialects tr", has_text="torch.adam")
        assert torch_row.locator("td.dcell .detected", has_text="torch").first.is_visible()  # its clip formula
        assert page.locator("#porting + p + table.pairs").get_by_text("example ↔ torch").is_visible()

    # the matrix
    assert page.locator("#matrix table.matrix.overview").is_visible()
    dense = page.locator("details.family", has_text="dense")
    assert dense.first.get_attribute("open") is not None  # a family with a failure is open
    assert dense.first.locator("table.matrix").is_visible()

    # the baseline: third.buggy's cases passed before and fail now
    baseline = page.locator("#baseline")
    assert baseline.is_visible()
    assert "regressed" in baseline.inner_text()
    regressed = baseline.locator("tr.chg-regressed")
    assert regressed.count() >= 1 and regressed.first.is_visible()
    assert page.locator("#matrix .entry.chg-regressed").count() >= 1

    # a failure shows the plot of the check that decided it: the mean error (bias)
    card = page.locator("article.card", has_text="third.buggy::dense-dyadic::float32::cpu").first
    card.scroll_into_view_if_needed()
    assert card.is_visible()
    assert "Decided by" in card.inner_text() and "bias" in card.locator(".decision .check").first.inner_text()
    plot = card.locator("figure.plot svg")
    assert plot.is_visible() and plot.bounding_box()["width"] > 300
    assert "bias (failed)" in plot.inner_html()
    assert "first failing step" in plot.inner_html()

    # an implementation's section: its dialect (claimed, detected), versions, every case
    page.locator("#dialects table.dialects a", has_text="example.numpy_adam").click()
    section = page.locator("details.impl", has_text="example.numpy_adam").first
    assert section.get_attribute("open") is not None and section.is_visible()  # the link opened it
    assert section.locator("table.impl-axes").is_visible()
    assert "versions (" in section.inner_text() and "fingerprint" in section.inner_text()
    section.locator("details.impl-cases > summary").click()
    cases = section.locator("table.cases tbody tr")
    assert cases.count() >= 2 and cases.first.is_visible()
    assert "dense-first-steps" in section.locator("table.cases tbody").inner_text()

    # the hostile adapter name is text, and nothing ran
    assert page.get_by_text(HOSTILE, exact=True).first.is_visible()
    assert page.evaluate("document.querySelectorAll('img, script').length") == 0
    assert dialogs == [] and errors == []
    # one file, no network: the page itself and nothing else
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests

    shot = os.environ.get("ADAMCONF_SCREENSHOT")
    if shot:
        page.reload(wait_until="load")  # the sections as they open: closed
        page.set_viewport_size({"width": 1280, "height": 2950})  # down to the failure's plot
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=shot, full_page=False)
    page.close()
