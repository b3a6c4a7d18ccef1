"""Detected dialects in the report: fingerprints files, ``run --fingerprint`` entries (results schema 3),
the dialect view (claimed beside detected), porting pairs, per-implementation sections, collapsed
matrix rows, run labels."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from adamconf.cli import main
from adamconf.reports import fingerprints as fpmod
from adamconf.reports import results
from adamconf.reports.provenance import collect_provenance
from adamconf.reports.render import render_string, report_main
from adamconf.reports.results import ResultsError, load_results, new_results, write_results

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "numpy_adapter.py"
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def provenance():
    return collect_provenance(command=["adamconf", "run"], golden_manifest_sha256="ab" * 32)


@pytest.fixture(scope="module")
def fp_file(tmp_path_factory) -> Path:
    """A real fingerprint of the README's example adapter (a few seconds), written by the command."""
    path = tmp_path_factory.mktemp("fp") / "fp.json"
    assert main(["fingerprint", f"{EXAMPLE}:NumpyAdam", "--results", str(path), "--label", "fp-box"]) == 0
    return path


@pytest.fixture(scope="module")
def entry(fp_file) -> dict:
    return fpmod.load_fingerprints(fp_file)["fingerprints"]["example.numpy_adam"]


def _case(adapter, scenario="dense-default", verdict="passed", budget=0.2, **fields):
    return {"adapter": adapter, "scenario": scenario, "family": scenario.split("-")[0], "dtype": "float32",
            "device": "cpu", "dialect": "eps=standard,bc=on", "verdict": verdict,
            "checks": {"update": budget}, **fields}


def _renamed(entry: dict, name: str, *, claimed: str | None = None, **axes) -> dict:
    """The real entry as another implementation's: its name, its claim, some axes detected otherwise."""
    out = copy.deepcopy(entry)
    out["adapter"] = name
    if claimed is not None:
        out["claimed"] = claimed
        out["declared"] = None
    for axis, value in axes.items():
        out["axes"][axis].update(status="identified", value=value, values=[value])
    return out


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start):page.index(end)]


# --- the files ---------------------------------------------------------------------------------


def test_the_fingerprint_command_writes_a_valid_versioned_file(fp_file, entry):
    doc = json.loads(fp_file.read_text())
    assert doc["kind"] == "adamconf-fingerprints" and doc["schema_version"] == fpmod.SCHEMA_VERSION == 1
    assert doc["label"] == "fp-box" and doc["provenance"]["packages"]["numpy"]
    assert entry["status"] == "done" and entry["spec"] == f"{EXAMPLE}:NumpyAdam" and entry["claimed"] == "pytorch"
    assert entry["axes"]["epsilon"]["status"] == "identified" and entry["axes"]["epsilon"]["values"] == ["standard"]
    assert entry["axes"]["amsgrad_max"]["status"] == "not testable"
    assert entry["path_class"]["detected"].startswith("powers=double,theta=once")
    assert entry["duration_s"] > 0 and all("candidates" not in p for p in entry["probes"])


def test_bad_and_newer_fingerprints_files_are_refused(fp_file, tmp_path):
    doc = json.loads(fp_file.read_text())
    bad = copy.deepcopy(doc)
    bad["fingerprints"]["example.numpy_adam"]["axes"]["epsilon"]["status"] = "maybe"
    with pytest.raises(ResultsError, match=r"\$\.fingerprints\.example\.numpy_adam\.axes\.epsilon\.status"):
        fpmod.validate(bad)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**doc, "schema_version": 2}))
    with pytest.raises(ResultsError, match="upgrade adamconf"):
        fpmod.load_report_input(newer)
    with pytest.raises(ResultsError, match="not an adamconf results file"):
        load_results(fp_file)  # e.g. given as --baseline


def test_results_schema_3_holds_fingerprints_and_version_2_migrates(provenance, entry, tmp_path):
    doc = new_results([_case("example.numpy_adam")], provenance, fingerprints={"example.numpy_adam": entry})
    assert doc["schema_version"] == results.SCHEMA_VERSION == 3
    assert load_results(write_results(doc, tmp_path / "r.json")) == doc
    with pytest.raises(ResultsError, match="fingerprints"):
        new_results([], provenance, fingerprints={"x": {"adapter": "x"}})
    old = {k: v for k, v in doc.items() if k != "fingerprints"}
    (tmp_path / "v2.json").write_text(json.dumps({**old, "schema_version": 2}))
    assert load_results(tmp_path / "v2.json")["fingerprints"] == {}


def test_a_report_of_fingerprints_alone_is_refused(fp_file, tmp_path, capsys):
    assert report_main([str(fp_file), "-o", str(tmp_path / "r.html")]) == 2
    assert "no results file among the inputs" in capsys.readouterr().err


# --- the dialect view ----------------------------------------------------------------------------


def test_the_report_merges_a_fingerprints_file_into_the_dialect_view(provenance, fp_file, tmp_path, capsys):
    run = write_results(new_results([_case("example.numpy_adam")], provenance,
                                    adapters={"example.numpy_adam": {"name": "example.numpy_adam",
                                                                     "dialect": "pytorch"}}), tmp_path / "run.json")
    assert report_main([str(run), str(fp_file), "-o", str(tmp_path / "r.html")]) == 0
    assert "1 fingerprint(s) from 1 file(s)" in capsys.readouterr().out
    view = _section((tmp_path / "r.html").read_text(encoding="utf-8"), 'id="dialects"', 'id="porting"')
    assert "1 of\n    1 fingerprinted" in view or "1 of 1 fingerprinted" in re.sub(r"\s+", " ", view)
    assert re.search(r'<span class="claimed">standard</span><span class="detected">standard</span>', view)
    assert re.search(r'untested"[^>]*><span class="claimed">raw</span><span class="detected">not testable', view)
    assert "budget used: standard" in view  # the evidence, in the cell's title
    assert "differs" not in view.split("<tbody>")[1]  # the example is what it claims


def test_a_detected_value_other_than_the_claimed_one_is_highlighted(provenance, entry):
    liar = _renamed(entry, "third.liar", epsilon="hat")
    page = render_string([new_results([_case("third.liar")], provenance, fingerprints={"third.liar": liar})])
    view = _section(page, 'id="dialects"', 'id="porting"')
    assert re.search(r'dcell differs"[^>]*><span class="claimed">standard</span><span class="detected">hat', view)
    section = _section(page, 'id="implementations"', 'id="skipped"')
    assert "1 axis differs" in section and '<tr class="differs"><th class="mono small">epsilon' in section


def test_porting_pairs_name_the_axes_on_which_frameworks_differ(provenance, entry):
    entries = {"torch.adam": _renamed(entry, "torch.adam"),
               "keras.adam": _renamed(entry, "keras.adam", claimed="keras", epsilon="hat"),
               "optax.adam": _renamed(entry, "optax.adam", claimed="optax")}
    cases = [_case(name) for name in entries]
    page = render_string([new_results(cases, provenance, fingerprints=entries)])
    pairs = re.sub(r"\s+", " ", _section(page, 'id="porting"', 'id="matrix"'))
    assert "keras ↔ torch" in pairs and "keras ↔ optax" in pairs and "optax ↔ torch" in pairs
    keras_torch = pairs[pairs.index("keras ↔ torch"):]
    assert "<b class=\"mono\">epsilon</b> hat vs standard" in keras_torch.split("</tr>")[0]
    optax_torch = pairs[pairs.index("optax ↔ torch"):].split("</tr>")[0]
    assert "epsilon" not in optax_torch  # both detected standard
    # clip is not testable on the example (no global_clipnorm): the presets' claims are compared, and say so
    assert '<b class="mono">clip</b> exact vs torch (claimed)' in optax_torch


def test_fingerprint_text_from_a_file_is_escaped(provenance, entry):
    hostile = _renamed(entry, HOSTILE)
    hostile["message"] = HOSTILE
    hostile["axes"]["epsilon"]["message"] = HOSTILE
    page = render_string([new_results([_case(HOSTILE)], provenance, fingerprints={HOSTILE: hostile})])
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


# --- per implementation, the matrix, the run labels -------------------------------------------------


def test_each_implementation_has_a_section_with_every_case_and_its_expectations(provenance, entry):
    cases = [_case("example.numpy_adam", budget=0.31),
             _case("example.numpy_adam", "dense-dyadic", verdict="xfailed", budget=4.0, first_failing_step=3,
                   message="update outside its budget from step 3",
                   expectation={"reason": "known: eps added late", "link": "https://example.org/1"}),
             _case("example.numpy_adam", "amsgrad-dyadic", verdict="skipped", budget=None,
                   checks={}, message="needs feature amsgrad")]
    page = render_string([new_results(cases, provenance, fingerprints={"example.numpy_adam": entry})])
    section = _section(page, '<section id="implementations">', 'id="skipped"')
    assert "<b>example.numpy_adam</b>" in section
    assert "versions (" in section and "numpy " in section  # the framework versions it ran with
    for scenario in ("dense-default", "amsgrad-dyadic"):
        assert f"<tr><td>{scenario}<td>f32 cpu" in section
    assert '<tr><td>dense-dyadic<td>f32 cpu<td class="v-xfailed">xfailed<td class="num">4.00× (step 3)' in section
    assert '<td class="v-passed b1">passed<td class="num">31%' in section
    assert "known: eps added late" in section and "over budget: update 4.00×" in section
    assert "first failing step 3" in section and 'href="https://example.org/1"' in section


def test_identical_matrix_rows_collapse_into_one_naming_them_all(provenance):
    cases = [_case(name, scenario, budget=b) for name in ("torch.adam", "torch.adam.foreach")
             for scenario, b in (("dense-default", 0.2), ("dense-dyadic", 0.3))]
    cases += [_case("optax.adam", "dense-default", budget=0.9), _case("optax.adam", "dense-dyadic", budget=0.3)]
    page = render_string([new_results(cases, provenance)])
    matrix = _section(page, 'id="matrix"', 'id="details"')
    assert matrix.count("torch.adam <span class=\"muted small\">+ 1 identical</span>") == 2  # overview, family
    assert "<div>torch.adam.foreach</div>" in matrix
    assert matrix.count('<th class="rowhead">optax.adam</th>') == 2
    assert 'class="entry v-passed b3"' in matrix  # 90 %: a near miss, not the green of rounding
    assert 'class="entry v-passed b1"' in matrix  # 20-30 %: ordinary rounding


def test_runs_are_labelled_by_machine_devices_frameworks_and_goldens(provenance):
    doc = new_results([_case("torch.adam"), _case("torch.adam", device="cuda")], provenance, label="gpu-box")
    page = render_string([doc])
    line = re.search(r"<li><b>gpu-box</b>: (.*?)</li>", page).group(1)
    assert "devices cpu, cuda" in line and f"golden manifest {'ab' * 8}" in line
    assert provenance["hostname"] in line


def test_runs_of_different_goldens_are_kept_apart_in_the_matrix(provenance):
    other = {**provenance, "golden_manifest_sha256": "cd" * 32}
    page = render_string([new_results([_case("torch.adam")], provenance, label="a"),
                          new_results([_case("optax.adam")], other, label="b")])
    assert 'id="manifest-warning"' in page
    assert "f32 cpu @a" in page and "f32 cpu @b" in page  # every cell names its run


def test_the_plot_is_deterministic_svg_without_ids(provenance):
    from adamconf.reports.plots import budget_plot_svg

    series = {"step": list(range(1, 31)), "update": [0.01 * s for s in range(1, 31)], "bias": [0.5] * 15 + [None] + [3.0] * 14}
    svg = budget_plot_svg(series, 16, deciding=["bias"], window=(17, 3.0))
    assert svg == budget_plot_svg(series, 16, deciding=["bias"], window=(17, 3.0))
    assert " id=" not in svg and "<style" not in svg and "<script" not in svg
    assert "bias (failed)" in svg and "update (within budget)" in svg and "first failing step 16" in svg


def test_run_fingerprint_writes_the_fingerprints_into_the_results_file(tmp_path):
    """A real run of the README's example adapter with --fingerprint (a few seconds)."""
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-m", "adamconf", "run", "--adapter", f"{EXAMPLE}:NumpyAdam", "--scenario",
         "dense-first-steps", "--dtype", "float32", "--fingerprint", "--results", "run.json", "--html", "r.html"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "--fingerprint: 1 adapter(s) fingerprinted in" in completed.stdout
    doc = load_results(tmp_path / "run.json")
    entry = doc["fingerprints"]["example.numpy_adam"]
    assert entry["status"] == "done" and entry["axes"]["bias_correction"]["values"] == [True]
    assert entry["spec"] == f"{EXAMPLE}:NumpyAdam" and entry["duration_s"] > 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<span class="claimed">on</span><span class="detected">on</span>' in page
    assert "1 of\n    1 fingerprinted" in page
