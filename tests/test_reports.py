"""The results file (schema, provenance, load, merge) and the HTML report built from it."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from html.parser import HTMLParser

import pytest

from adamconf.adapters.contract import DTYPES
from adamconf.reports import results
from adamconf.reports.plots import budget_plot_svg, format_budget
from adamconf.reports.provenance import collect_provenance
from adamconf.reports.render import render_html, report_main
from adamconf.reports.results import (MAX_SERIES_POINTS, VERDICTS, ResultsError, load_results, merge,
                                      new_results, validate, write_results)

HOSTILE = "evil<script>alert('x')</script>"


def _case(adapter="torch.adam", scenario="dense-default", family="dense", dtype="float32", device="cpu",
          **fields):
    return {"adapter": adapter, "scenario": scenario, "family": family, "dtype": dtype, "device": device,
            "dialect": "eps=standard,bc=on", **fields}


def _series(steps, peak_at=None, fail_at=None):
    """A budget fraction that creeps up, with a spike at ``peak_at`` and a jump from ``fail_at``."""
    update = [0.01 + 0.0001 * s for s in steps]
    if peak_at is not None:
        update[steps.index(peak_at)] = 0.97
    if fail_at is not None:
        update = [u * 60 if s >= fail_at else u for s, u in zip(steps, update)]
    return {"step": list(steps), "update": update, "trajectory": [u / 2 for u in update]}


def _cases():
    """A realistic mix: passes near and far from the budget, a failure, an xfail, a skip, an error."""
    return [
        _case(verdict="passed", checks={"update": 0.42, "trajectory": 0.1, "bias": 0.05, "state": None},
              series=_series(list(range(1, 1001)), peak_at=613), duration_s=0.12),
        _case(dtype="float64", verdict="passed", checks={"update": 0.02, "trajectory": 0.004}, duration_s=0.05),
        _case(adapter="tf_keras.legacy.adam", scenario="amsgrad-decreasing-v", family="amsgrad",
              verdict="failed", checks={"update": 34.2, "trajectory": 3.1, "state": 12.0},
              first_failing_step=7, series=_series(list(range(1, 301)), fail_at=7),
              message="step 7, tensor 1 (shape (3, 4)), element (2, 1): expected 0.12345678 got 0.12345901"),
        _case(adapter="optax.adam", scenario="decay-legacy", family="decay", verdict="xfailed",
              message="no legacy inverse-time decay",
              expectation={"reason": "optax has no `decay` argument", "link": "https://example.org/issue/1"}),
        _case(adapter="tf_keras.legacy.adam", dtype="bfloat16", verdict="skipped",
              message="tf_keras.legacy.adam does not support bfloat16"),
        _case(adapter="torch.adam.fused", device="cuda", verdict="skipped", message="CUDA is not available"),
        _case(adapter="torch.adam", scenario="sparse-repeated", family="sparse", verdict="error",
              message="Traceback (most recent call last):\nValueError: boom"),
    ]


@pytest.fixture(scope="module")
def provenance():
    return collect_provenance(command=["adamconf", "run"], golden_manifest_sha256="ab" * 32)


@pytest.fixture(scope="module")
def doc(provenance):
    return new_results(_cases(), provenance, label="cpu-runner",
                       adapters={"torch.adam": {"name": "torch.adam", "dialect": "pytorch"}})


# --- building and validating -------------------------------------------------


def test_a_realistic_document_is_valid_and_complete(doc):
    validate(doc)
    assert doc["kind"] == "adamconf-results" and doc["schema_version"] == results.SCHEMA_VERSION
    assert doc["summary"] == {"passed": 2, "failed": 1, "xfailed": 1, "xpassed": 0, "skipped": 2,
                              "error": 1, "crashed": 0, "timeout": 0}
    first = doc["cases"][0]
    assert first["id"] == "torch.adam::dense-default::float32::cpu"
    assert first["rerun"] == ("adamconf run --adapter torch.adam --scenario dense-default "
                              "--dtype float32 --device cpu")
    assert first["budget_used"] == 0.42  # the largest check, filled in


def test_long_series_are_downsampled_keeping_peaks_and_the_first_failing_step(doc):
    passed, failed = doc["cases"][0], doc["cases"][2]
    assert len(passed["series"]["step"]) == MAX_SERIES_POINTS
    assert 613 in passed["series"]["step"] and max(passed["series"]["update"]) == 0.97
    assert passed["series"]["step"][0] == 1 and passed["series"]["step"][-1] == 1000
    assert 7 in failed["series"]["step"]


def test_non_finite_numbers_become_null(provenance):
    doc = new_results([_case(verdict="failed", checks={"update": float("nan"), "trajectory": float("inf")},
                             message="the implementation returned NaN")], provenance)
    assert doc["cases"][0]["checks"] == {"update": None, "trajectory": None}
    assert doc["cases"][0]["budget_used"] is None


@pytest.mark.parametrize("path, value, expected", [
    (("cases", 1, "verdict"), "pass", "$.cases[1].verdict"),
    (("cases", 0, "dtype"), "float8", "$.cases[0].dtype"),
    (("cases", 0, "budget_used"), "high", "$.cases[0].budget_used"),
    (("provenance", "gpus"), "H100", "$.provenance.gpus"),
    (("schema_version",), 7, "$.schema_version"),
])
def test_a_schema_violation_names_the_path_and_the_value(doc, path, value, expected):
    bad = json.loads(json.dumps(doc))
    target = bad
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ResultsError) as info:
        validate(bad)
    assert expected in str(info.value) and repr(value) in str(info.value)


@pytest.mark.parametrize("corrupt, expected", [
    (lambda d: d["cases"].append(dict(d["cases"][0])), "repeats $.cases[0]"),
    (lambda d: d["summary"].update(passed=99), "$.summary.passed: 99: must be 2"),
    (lambda d: d["cases"][0].update(budget_used=0.1), "must be the largest check"),
    (lambda d: d["cases"][1].update(checks={}, budget_used=1.5), "within its budget"),
    (lambda d: d["cases"][0].update(id="torch.adam::other::float32::cpu"), "adapter::scenario::dtype::device"),
    (lambda d: d["cases"][0]["series"]["update"].pop(), "values for"),
    (lambda d: d["cases"][0]["series"]["update"].__setitem__(3, "x"), "$.cases[0].series.update[3]: 'x'"),
    (lambda d: d["cases"][3]["expectation"].pop("reason"), "'reason' is a required property"),
])
def test_corrupted_documents_are_refused_naming_the_place(doc, corrupt, expected):
    bad = json.loads(json.dumps(doc))
    corrupt(bad)
    with pytest.raises(ResultsError, match="invalid adamconf results") as info:
        validate(bad)
    assert expected in str(info.value)


@pytest.mark.parametrize("corrupt, expected", [
    (lambda series: series.pop("step"), "$.cases[0].series: 'step' is a required property"),
    (lambda series: series["step"].__setitem__(0, True), "$.cases[0].series.step[0]: True is not an integer"),
    (lambda series: series["update"].__setitem__(1, -0.5), "$.cases[0].series.update[1]: -0.5 is not a number >= 0"),
    (lambda series: series.update(Bad=[0.1] * len(series["step"])), "'Bad' does not match"),
    (lambda series: series.update(update=0.3), "$.cases[0].series.update: 0.3: is not of type 'array'"),
    (lambda series: series.update(step=[]), "a series has 1 to 200"),
])
def test_series_are_checked_as_the_schema_says(doc, corrupt, expected):
    bad = json.loads(json.dumps(doc))
    corrupt(bad["cases"][0]["series"])
    with pytest.raises(ResultsError, match="invalid adamconf results") as info:
        validate(bad)
    assert expected in str(info.value)


def test_without_jsonschema_the_structure_is_still_checked_and_that_is_said(doc, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes `import jsonschema` raise ImportError
    with pytest.warns(UserWarning, match="jsonschema is not installed"):
        validate(doc)
    bad = json.loads(json.dumps(doc))
    bad["cases"][0]["verdict"] = "pass"
    with pytest.warns(UserWarning), pytest.raises(ResultsError, match=r"\$\.cases\[0\]\.verdict"):
        validate(bad)


def test_the_schema_enumerates_the_contract_dtypes_and_the_verdicts():
    schema = results.schema()
    assert tuple(schema["$defs"]["case"]["properties"]["dtype"]["enum"]) == DTYPES
    assert tuple(schema["$defs"]["verdict"]["enum"]) == VERDICTS
    assert tuple(schema["$defs"]["summary"]["required"]) == VERDICTS


# --- writing and loading -----------------------------------------------------


def test_write_then_load_round_trips(doc, tmp_path):
    path = write_results(doc, tmp_path / "run.json")
    assert load_results(path) == doc
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left behind


def test_a_version_1_file_reads_as_a_complete_run(doc, tmp_path):
    old = {k: v for k, v in doc.items() if k != "incomplete"} | {"schema_version": 1}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    assert load_results(tmp_path / "v1.json") == {**doc, "incomplete": None}


def test_an_interrupted_run_says_so_in_its_file_and_its_report(doc, tmp_path):
    path = write_results({**doc, "incomplete": "interrupted by SIGTERM after 3 case(s) were judged"},
                         tmp_path / "run.json")
    assert load_results(path)["incomplete"].startswith("interrupted by SIGTERM")
    page = render_html([load_results(path)], tmp_path / "r.html").read_text()
    assert "incomplete" in page and "interrupted by SIGTERM after 3 case(s) were judged" in page


def test_an_invalid_document_is_not_written_over_a_good_file(doc, tmp_path):
    path = write_results(doc, tmp_path / "run.json")
    with pytest.raises(ResultsError):
        write_results({**doc, "summary": {}}, path)
    assert load_results(path) == doc


@pytest.mark.parametrize("content, expected", [
    ({"kind": "pytest-json-report", "schema_version": 1}, "not an adamconf results file"),
    ([1, 2, 3], "not an adamconf results file"),
    ({"kind": "adamconf-results", "schema_version": results.SCHEMA_VERSION + 1}, "upgrade adamconf"),
    ({"kind": "adamconf-results", "schema_version": 0}, "not a valid version"),
    ({"kind": "adamconf-results", "schema_version": "1"}, "not a valid version"),
])
def test_other_kinds_and_unknown_versions_are_refused(tmp_path, content, expected):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ResultsError, match=expected) as info:
        load_results(path)
    assert str(path) in str(info.value)


def test_non_json_nan_and_missing_files_are_refused(doc, tmp_path):
    (tmp_path / "text.json").write_text("budget used: 42%")
    with pytest.raises(ResultsError, match="not valid JSON"):
        load_results(tmp_path / "text.json")
    (tmp_path / "nan.json").write_text(json.dumps(doc).replace('"budget_used": 0.42', '"budget_used": NaN'))
    with pytest.raises(ResultsError, match="NaN is not a JSON number"):
        load_results(tmp_path / "nan.json")
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "absent.json")


# --- merging ------------------------------------------------------------------


def test_merge_keeps_the_same_case_from_two_machines_apart(provenance):
    cpu = new_results(_cases(), provenance)  # no label: both runs fall back to the hostname
    gpu = new_results(_cases(), {**provenance, "gpus": [{"name": "NVIDIA H100", "driver": "550", "memory_mb": 81559}]})
    view = merge([cpu, gpu])
    keys = [run["key"] for run in view["runs"]]
    assert len(set(keys)) == 2
    assert len(view["cases"]) == 2 * len(_cases())
    assert len({(c["run"], c["id"]) for c in view["cases"]}) == len(view["cases"])
    assert view["summary"] == {v: cpu["summary"][v] + gpu["summary"][v] for v in VERDICTS}


def test_runs_of_one_machine_are_named_by_their_adapters_then_by_time(provenance):
    a = new_results([_case(verdict="passed")], provenance)
    b = new_results([_case(adapter=name, verdict="passed") for name in ("optax.adam", "jax.x", "k.y")], provenance)
    c = new_results([_case(verdict="passed")], provenance)
    keys = [run["key"] for run in merge([a, b, c])["runs"]]
    host = provenance["hostname"]
    assert keys[1] == f"{host}: optax.adam, jax.x +1"
    assert keys[0].startswith(f"{host}: torch.adam") and keys[0] != keys[2]


def test_merge_refuses_the_same_run_twice(doc):
    with pytest.raises(ResultsError, match="same run"):
        merge([doc, doc])


# --- provenance ----------------------------------------------------------------


def test_provenance_fields_and_types(provenance):
    expected_types = {
        "adamconf_version": str, "git_revision": (str, type(None)), "git_dirty": (bool, type(None)),
        "golden_manifest_sha256": (str, type(None)), "python": str, "implementation": str, "os": str,
        "platform": str, "machine": str, "cpu": (str, type(None)), "cpu_count": (int, type(None)),
        "gpus": list, "packages": dict, "env": dict, "command": list, "hostname": str,
    }
    assert set(provenance) == set(expected_types)
    for field, kind in expected_types.items():
        assert isinstance(provenance[field], kind), (field, provenance[field])
    assert provenance["packages"]["numpy"] and provenance["packages"]["adamconf"]
    for gpu in provenance["gpus"]:
        assert set(gpu) == {"name", "driver", "memory_mb"}
    json.dumps(provenance)


def test_provenance_imports_no_framework():
    code = ("import sys; from adamconf.reports.provenance import collect_provenance; collect_provenance(); "
            "print([m for m in ('torch', 'tensorflow', 'jax', 'keras') if m in sys.modules])")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


# --- the plot and the page -----------------------------------------------------------


def test_the_plot_is_an_svg_with_no_page_wide_ids_or_styles():
    svg = budget_plot_svg(_series(list(range(1, 51)), fail_at=20), first_failing_step=20)
    root = ElementTree.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.findall(".//{http://www.w3.org/2000/svg}path")
    assert "<script" not in svg and "<style" not in svg and "<metadata" not in svg
    assert 'id="figure_1"' not in svg  # would repeat in every plot of the page


@pytest.mark.parametrize("fraction, text", [
    (None, "–"), (0.0, "0%"), (5e-5, "<0.01%"), (0.003, "0.3%"), (0.42, "42%"), (1.0, "100%"),
    (1.0000001, "1.00×"), (34.2, "34.2×"), (25000.0, "2.5e4×"),
])
def test_budget_formatting(fraction, text):
    assert format_budget(fraction) == text


class _Elements(HTMLParser):
    """Every start tag of a page with its attributes, and the text of its <style> elements."""

    def __init__(self):
        super().__init__()
        self.tags, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


@pytest.fixture(scope="module")
def hostile_page(provenance, tmp_path_factory):
    cases = _cases() + [
        _case(adapter=HOSTILE, verdict="failed", checks={"update": 2.0}, first_failing_step=3,
              series=_series(list(range(1, 11)), fail_at=3),
              message="<img src=x onerror=alert(1)> & </pre><script>alert(2)</script>"),
        _case(adapter=HOSTILE, scenario="sparse-empty", family="sparse", verdict="xpassed",
              checks={"update": 0.3}, expectation={"reason": "<b onclick=alert(3)>", "link": "javascript:alert(4)"}),
    ]
    cpu = new_results(cases, {**provenance, "hostname": "<i>host</i>"}, label="cpu <runner>",
                      adapters={HOSTILE: {"name": HOSTILE, "dialect": "<u>kingma</u>"}})
    gpu = new_results(_cases(), provenance, label="gpu-runner")
    path = render_html([cpu, gpu], tmp_path_factory.mktemp("report") / "report.html")
    return path.read_text(encoding="utf-8")


def test_strings_from_results_files_cannot_inject_markup(hostile_page):
    assert "<script" not in hostile_page.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in hostile_page
    assert "<img src=x" not in hostile_page and "&lt;img src=x onerror=alert(1)&gt;" in hostile_page
    assert "<b onclick" not in hostile_page and "<i>host</i>" not in hostile_page
    parser = _Elements()
    parser.feed(hostile_page)
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert not str(attrs.get("href", "")).lower().startswith("javascript:"), (tag, attrs)


def test_the_page_is_self_contained(hostile_page):
    parser = _Elements()
    parser.feed(hostile_page)
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "video", "audio", "source"}
    for tag, attrs in parser.tags:
        assert "src" not in attrs, (tag, attrs)
        href = attrs.get("href") or attrs.get("xlink:href")
        if href is not None and tag != "a":
            assert href.startswith("#"), (tag, href)  # SVG <use> refers inside the page only
    styles = "".join(parser.styles)
    assert "@import" not in styles and "url(" not in styles and "@font-face" not in styles


def test_the_page_shows_matrix_failures_plots_and_expectations(hostile_page):
    assert hostile_page.count("<svg") >= 2  # the failure and the closest pass
    assert "passed 42%" in hostile_page and "failed 34.2×" in hostile_page
    assert "adamconf run --adapter tf_keras.legacy.adam --scenario amsgrad-decreasing-v" in hostile_page
    assert 'href="https://example.org/issue/1"' in hostile_page
    assert "javascript:alert(4)" in hostile_page  # shown as text, never as a link
    assert "cpu &lt;runner&gt;" in hostile_page and "gpu-runner" in hostile_page


# --- the command ----------------------------------------------------------------


def test_report_main_writes_the_page(doc, tmp_path, capsys):
    write_results(doc, tmp_path / "run.json")
    assert report_main([str(tmp_path / "run.json"), "-o", str(tmp_path / "out.html")]) == 0
    assert (tmp_path / "out.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "wrote" in capsys.readouterr().out


def test_report_main_refuses_missing_and_invalid_files_with_exit_2(doc, tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({**doc, "schema_version": 99}))
    code = report_main([str(tmp_path / "absent.json"), str(tmp_path / "bad.json"), "-o", str(tmp_path / "o.html")])
    err = capsys.readouterr().err
    assert code == 2
    assert "absent.json: no such results file" in err and "upgrade adamconf" in err
    assert not (tmp_path / "o.html").exists()
    assert report_main([]) == 2  # usage error from argparse


def test_report_main_refuses_the_same_run_twice(doc, tmp_path, capsys):
    write_results(doc, tmp_path / "run.json")
    assert report_main([str(tmp_path / "run.json")] * 2 + ["-o", str(tmp_path / "o.html")]) == 2
    assert "same run" in capsys.readouterr().err


# --- why it failed, what changed, the matrix by family -------------------------------


def _bias_failure(**fields):
    """A case that failed only its mean-error check: the update check passed at 60 %."""
    steps = list(range(1, 129))
    return _case(scenario="dense-dyadic", verdict="failed", checks={"update": 0.6, "trajectory": 0.3, "bias": 3.8},
                 series={"step": steps, "update": [0.3 + 0.002 * s for s in steps],
                         "bias": [0.1 + 0.02 * s for s in steps]},
                 message="mean relative update error outside its budget: v-dominated elements Z = +3e-06 "
                         "against 7.94e-07 from step 66; at step 75 alone 2.52 times its threshold", **fields)


def test_a_mean_error_failure_plots_the_bias_series_it_was_decided_by(provenance, tmp_path):
    from adamconf.reports.render import deciding_checks

    doc = new_results([_bias_failure()], provenance)
    assert deciding_checks(doc["cases"][0]) == ["bias"]
    page = render_html([doc], tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Decided by" in page and ">bias</span> 3.80×" in page
    assert "bias (failed)" in page and "update (within budget)" in page  # the legend of the plot
    assert "mean error from step 66: 3.80×" in page  # the window statistic, from its first step
    assert "window starts at step 66" in page


def test_a_trajectory_failure_says_which_check_failed_and_that_it_has_no_series(provenance, tmp_path):
    case = _case(verdict="failed", checks={"update": 0.5, "trajectory": 2.5}, first_failing_step=9,
                 series={k: v for k, v in _series(list(range(1, 21))).items() if k != "trajectory"},
                 message="trajectory outside its budget from step 9")  # as the judge records: no trajectory series
    page = render_html([new_results([case], provenance)], tmp_path / "r.html").read_text(encoding="utf-8")
    assert ">trajectory</span> 2.50×" in page
    assert "No per-step series is recorded for trajectory" in page
    assert "first failing step 9" in page  # marked in the plot


def _baseline_pair(provenance, manifest_now=None):
    before = [_case(verdict="passed", checks={"update": 0.2}),
              _case(scenario="dense-dyadic", verdict="failed", checks={"update": 4.0}, first_failing_step=2),
              _case(scenario="dense-large-lr", verdict="xfailed", expectation={"reason": "known", "link": None}),
              _case(scenario="dense-gone", verdict="passed", checks={"update": 0.1})]
    now = [_case(verdict="failed", checks={"update": 5.0}, first_failing_step=3, message="update outside"),
           _case(scenario="dense-dyadic", verdict="passed", checks={"update": 0.3}),
           _case(scenario="dense-large-lr", verdict="xfailed", expectation={"reason": "known", "link": None}),
           _case(scenario="dense-new", verdict="passed", checks={"update": 0.1})]
    old = new_results(before, provenance, label="last-week")
    new = new_results(now, {**provenance, "golden_manifest_sha256": manifest_now or provenance["golden_manifest_sha256"]},
                      label="today")
    return new, old


def test_the_baseline_section_lists_regressed_fixed_new_and_gone(provenance):
    from adamconf.reports.render import compare

    new, old = _baseline_pair(provenance)
    result = compare(merge([new]), merge([old]))
    assert result["counts"] == {"regressed": 1, "fixed": 1, "new": 1, "gone": 1}
    assert result["status"]["torch.adam::dense-default::float32::cpu"] == "regressed"
    assert result["status"]["torch.adam::dense-dyadic::float32::cpu"] == "fixed"
    assert not result["manifest_differs"]


def test_the_report_with_a_baseline_puts_changes_on_top_and_marks_the_matrix(provenance, tmp_path):
    new, old = _baseline_pair(provenance)
    write_results(new, tmp_path / "new.json")
    write_results(old, tmp_path / "old.json")
    out = tmp_path / "r.html"
    assert report_main([str(tmp_path / "new.json"), "--baseline", str(tmp_path / "old.json"), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.index('id="baseline"') < page.index('id="summary"') < page.index('id="matrix"')
    assert "<b>1</b> regressed" in page and "<b>1</b> gone" in page
    assert "chg-regressed" in page[page.index('id="matrix"'):]  # the regressed case is marked in its cell
    assert "The baseline used other goldens" not in page


def test_runs_of_different_golden_manifests_are_said_to_differ(provenance, tmp_path):
    new, old = _baseline_pair(provenance, manifest_now="cd" * 32)
    page = render_html([new], tmp_path / "r.html", baseline=[old]).read_text(encoding="utf-8")
    assert "The baseline used other goldens" in page and "cdcdcdcdcdcdcdcd" in page
    page = render_html([new, old], tmp_path / "m.html").read_text(encoding="utf-8")
    assert "These runs compared against different golden manifests" in page


def test_the_matrix_is_one_table_per_family_and_the_failing_ones_are_open(doc, tmp_path):
    page = render_html([doc], tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count('<details class="family"') == 4  # dense, amsgrad, decay, sparse
    assert '<details class="family" id="family-1" open>' in page  # amsgrad: a failure
    assert '<details class="family" id="family-2">' in page  # decay: an xfail only, closed
    assert "&lt; 50%: ordinary rounding" in page and "80-95%: near miss" in page


@pytest.mark.parametrize("budget, band", [(0.05, 0), (0.3, 1), (0.45, 1), (0.6, 2), (0.85, 3), (0.97, 4)])
def test_ordinary_rounding_and_near_misses_get_different_colours(budget, band):
    from adamconf.reports.render import _band

    assert _band(budget) == band


def test_the_page_is_the_same_for_the_same_inputs(doc):
    from adamconf.reports.render import render_string

    with_plots = new_results(_cases() + [_bias_failure()], collect_provenance(golden_manifest_sha256=None))
    assert render_string([doc, with_plots]) == render_string([doc, with_plots])


def test_the_dialect_view_shows_claimed_axes_and_the_path_classes_of_passes(provenance, tmp_path):
    cases = [_case(verdict="passed", checks={"update": 0.1}, path_class="powers=pow,theta=once,hyper=dtype"),
             _case(adapter="other", verdict="passed", checks={"update": 0.1}, dialect="eps=hat,bc=on",
                   path_class="powers=double,theta=once,hyper=dtype")]
    adapters = {"torch.adam": {"name": "torch.adam", "dialect": "pytorch"},
                "other": {"name": "other", "dialect": "keras"}}
    page = render_html([new_results(cases, provenance, adapters=adapters)], tmp_path / "r.html").read_text(encoding="utf-8")
    view = page[page.index('id="dialects"'):page.index('id="porting"')]
    assert ">epsilon</th>" in view and ">path class</th>" in view
    # no fingerprint: the claimed value alone, from the preset (keras: epsilon hat, pytorch: standard)
    assert '<span class="claimed">hat</span></td>' in view and '<span class="claimed">standard</span></td>' in view
    section = page[page.index('<section id="implementations">'):page.index('id="skipped"')]
    assert "powers=pow,theta=once,hyper=dtype" in section and "powers=double,theta=once,hyper=dtype" in section
    assert "0 of\n    2 fingerprinted" in view


def test_run_html_writes_the_report_from_the_results_file(tmp_path):
    from adamconf.cli import parse_args
    from adamconf.suites.command import _html_problem

    args = parse_args(["run", "--adapter", "x", "--results", str(tmp_path / "r.json"), "--html",
                       str(tmp_path / "r.html")])
    assert args.html == str(tmp_path / "r.html") and "--html" not in args.pytest_args
    assert _html_problem(args, args.html) is None
    args = parse_args(["run", "--results", "", "--html", "r.html"])
    assert "give --results PATH" in _html_problem(args, args.html)
