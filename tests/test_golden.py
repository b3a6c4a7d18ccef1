"""The scenario catalogue and the golden store: coverage, exactness, hashes, reproducibility, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from adamconf.golden import scenarios as catalogue
from adamconf.golden.build import build, verify
from adamconf.golden.inputs import generate, representable
from adamconf.golden.store import DATA_DIR, GoldenError, load_golden, read_manifest
from adamconf.reference.dialect import PRESETS
from adamconf.reference.grads import SparseGrad

from conftest import ADAMCONF as CLI


def test_catalogue_covers_every_family_with_at_least_thirty_scenarios():
    assert len(catalogue.CATALOGUE) >= 30
    assert {s.family for s in catalogue.CATALOGUE} == set(catalogue.FAMILIES)
    assert len({s.name for s in catalogue.CATALOGUE}) == len(catalogue.CATALOGUE)


def test_scenarios_have_several_tensors_of_different_shapes():
    multi = [s for s in catalogue.CATALOGUE if len({tuple(x) for x in s.shapes}) >= 2]
    assert len(multi) >= 0.8 * len(catalogue.CATALOGUE)


@pytest.mark.parametrize("name", [s.name for s in catalogue.CATALOGUE])
def test_inputs_are_exact_in_every_declared_dtype_and_deterministic(name):
    s = catalogue.get(name)
    p1, g1 = generate(s.inputs, s.shapes, s.steps)
    p2, g2 = generate(s.inputs, s.shapes, s.steps)
    for a, b in zip(p1, p2):
        assert np.array_equal(a, b)
    values = list(p1) + [e.values if isinstance(e, SparseGrad) else e for row in g1 for e in row]
    for dtype in s.dtypes:
        assert all(representable(v, dtype) for v in values), f"{name}: inputs not exact in {dtype}"


def test_every_preset_has_its_golden():
    manifest = read_manifest()
    for s in catalogue.CATALOGUE:
        for preset in PRESETS.values():
            if preset.sparse_rows == "lazy" and not s.sparse:
                continue
            g = load_golden(s, preset, manifest=manifest)
            assert g.record.theta[0].shape[0] == len(s.recorded_steps())


def test_golden_is_double_double():
    g = load_golden(catalogue.get("dense-default"), PRESETS["pytorch"])
    hi, lo = g.record.theta[0][1:], g.record.theta_lo[0][1:]
    assert np.any(lo != 0)
    assert np.all(np.abs(lo) <= np.spacing(np.abs(hi)) / 2)


def test_a_golden_read_twice_is_read_once_and_cannot_be_written(tmp_path):
    """A worker reads a store file once for every adapter and dtype that shares it: the second load gives the
    same arrays, read-only (a write into them would reach every later case, so it raises); a file whose
    manifest digest changed (a rebuild) is read and checked again, and a changed byte is then refused."""
    s = catalogue.get("dense-default")
    first, again = load_golden(s, PRESETS["pytorch"]), load_golden(s, PRESETS["pytorch"])
    assert again.record.theta[0] is first.record.theta[0] and again.record.steps is first.record.steps
    for a in (first.record.theta[0], first.record.theta_lo[0], first.record.steps):
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    own = load_golden(s, PRESETS["pytorch"], data_dir=data)  # another store: read from its own files
    assert own.record.theta[0] is not first.record.theta[0]
    assert np.array_equal(own.record.theta[0], first.record.theta[0])
    rel = "dense-default/eps-standard__bc-on.npz"
    raw = bytearray((data / rel).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (data / rel).write_bytes(bytes(raw))
    manifest = read_manifest(data)
    manifest["files"][rel] = "0" * 64  # as if rebuilt: the digest the process checked is not this one
    with pytest.raises(GoldenError, match="does not match its manifest"):
        load_golden(s, PRESETS["pytorch"], data_dir=data, manifest=manifest)


def test_committed_goldens_verify_and_rebuild_bit_for_bit():
    assert verify(workers=2, log=lambda *a: None) == []


def _corrupt_copy(tmp_path, rel):
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    target = data / rel
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    return data


@pytest.mark.parametrize("rel", ["dense-default/eps-standard__bc-on.npz", "sparse-empty/inputs.npz"])
def test_one_changed_byte_is_refused_with_the_rebuild_command(tmp_path, rel):
    data = _corrupt_copy(tmp_path, rel)
    scenario = rel.split("/")[0]
    with pytest.raises(GoldenError, match=f"adamconf golden build --scenario {scenario}"):
        s = catalogue.get(scenario)
        load_golden(s, s.golden_dialects()[0] if "inputs" in rel else PRESETS["pytorch"], data_dir=data)
    proc = subprocess.run(CLI + ["golden", "verify", "--data-dir", str(data), "--sample", "2", "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert rel in proc.stderr and f"adamconf golden build --scenario {scenario}" in proc.stderr


def test_build_is_reproducible_into_a_fresh_directory(tmp_path):
    figures = build(["sparse-*", "clip-global-fires"], data_dir=tmp_path, workers=2, log=lambda *a: None)
    assert figures["goldens"] >= 5 and figures["per_core"] > 0
    fresh = json.loads((tmp_path / "manifest.json").read_text())["files"]
    committed = read_manifest()["files"]
    for rel, digest in fresh.items():
        assert committed[rel] == digest, f"{rel} rebuilt differently"
        assert (tmp_path / rel).read_bytes() == (DATA_DIR / rel).read_bytes()


def test_cli_lists_scenarios():
    out = subprocess.run(CLI + ["list", "scenarios"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line and not line.endswith("families")]
    assert len(lines) >= 30
    for family in catalogue.FAMILIES:
        assert f" {family} " in out
    as_json = json.loads(subprocess.run(CLI + ["list", "scenarios", "--json"], capture_output=True, text=True,
                                        check=True).stdout)
    assert {d["name"] for d in as_json} == {s.name for s in catalogue.CATALOGUE}


def test_cli_golden_verify_passes_on_the_committed_store():
    proc = subprocess.run(CLI + ["golden", "verify", "--sample", "3", "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "bit for bit" in proc.stdout


def test_unknown_scenario_pattern_is_a_clear_error():
    with pytest.raises(KeyError, match="adamconf list scenarios"):
        catalogue.get("dense-nope")
    proc = subprocess.run(CLI + ["golden", "build", "--scenario", "nope-*", "--data-dir", "/nonexistent/x"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "no scenario matches" in proc.stderr
