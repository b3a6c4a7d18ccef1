"""The suites catch public Adam bugs: each reproduction of tests/public_bugs.py, run through the suites' own
code path (``run_case``) on the scenarios that expose it, is caught (verdict failed, or error where the bug
raised), by the named check; and it passes the scenarios that do not expose it (its controls), so the kill
is the bug, not a broken reproduction. A bug the suites cannot catch today is an expected failure (strict:
the day it is caught, the test says so). docs/public-bugs.md is benchmarks/public_bug_table.py's output.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from adamconf.adapters.driver import support
from adamconf.golden import scenarios as catalogue
from mutants import failure_kind, has_golden, run
from public_bugs import BUGS, CapturableTranscript, FusedAmp, bf16_truncate, caught_by, get, missing_requirement

CASES = [pytest.param(b, label, id=f"{b.name}-{label}") for b in BUGS for label in b.kills]
CONTROLS = [pytest.param(b, label, id=f"{b.name}-{label}") for b in BUGS for label in b.controls]


def _skip_if_missing(bug):
    why = missing_requirement(bug)
    if why:
        pytest.skip(why)


def test_the_catalogue():
    assert len(BUGS) >= 14
    for b in BUGS:
        assert b.repo.count("/") == 1 and b.ref.split()[0] in ("issue", "PR") and b.ref.split()[1].isdigit(), b
        assert b.shipped and b.how and b.kills and b.kind in ("budget", "nonfinite", "error"), b
        assert b.caught or b.not_caught, b
        for label in b.kills + b.controls:
            catalogue.get(label)  # exists
        if missing_requirement(b) is None:
            adapter = b.make()
            for label in b.kills + b.controls:
                s = catalogue.get(label)
                assert b.dtype in s.dtypes, (b.name, label)
                assert support(adapter, s, b.dtype, "cpu") is None, (b.name, label, support(adapter, s, b.dtype, "cpu"))
                assert has_golden(adapter, s), (b.name, label)


@pytest.mark.parametrize("bug,label", CASES)
def test_bug_is_caught(bug, label):
    _skip_if_missing(bug)
    out = run(bug.make(), label, bug.dtype)
    kind = failure_kind(out)
    if not bug.caught:  # a strict expected failure: the day it is caught, this says so
        assert out.verdict == "passed", f"{bug.name} is caught on {label} now ({out.verdict}): set caught=True"
        pytest.xfail(f"not caught today: {bug.not_caught}")
    assert out.verdict == bug.verdict and kind == bug.kind, (
        f"{bug.name} on {label}: verdict {out.verdict} ({kind}), expected a {bug.kind} failure; budget used "
        f"{out.budget_used}\n{out.message}")
    check = caught_by(out)
    if kind == "budget":
        assert out.budget_used > 1 and "outside its budget" in out.message, out.message
        assert check in ("update", "trajectory", "state", "bias"), (check, out.assessment.checks)
    elif kind == "nonfinite":
        assert "non-finite pattern differs" in out.message, out.message
    else:
        assert out.verdict == "error" and check in ("adapter raised", "non-finite parameters (contract)"), out.message


@pytest.mark.parametrize("bug,label", CONTROLS)
def test_bug_passes_where_it_does_not_show(bug, label):
    """The reproduction is Adam everywhere else: its kills are the bug."""
    _skip_if_missing(bug)
    out = run(bug.make(), label, bug.dtype)
    assert out.verdict == "passed", f"{bug.name} fails its control {label}: {out.message}"


@pytest.mark.parametrize("label", ["edge-nan", "edge-inf"])
def test_the_skip_dialect_separates_the_fused_found_inf_bug(label):
    """pytorch PR 95847 (fused Adam ignored found_inf when grad_scale was None), by the nonfinite=skip axis: the
    correct loop (real torch 2.13 fused Adam honouring found_inf) passes the skip golden, the buggy one (found_inf
    never passed) fails it by its non-finite pattern; and under torch's own propagating dialect it is the other
    way round, so the axis, not the reproduction, is what separates them."""
    bug = get("torch_fused_found_inf")
    _skip_if_missing(bug)
    fixed, buggy = FusedAmp(pass_found_inf=True), FusedAmp(pass_found_inf=False)
    assert run(fixed, label, "float32").verdict == "passed"
    out = run(buggy, label, "float32")
    assert out.verdict == "failed" and "non-finite pattern differs" in out.message, out.message
    for adapter in (fixed, buggy):
        adapter.dialect = "pytorch"
    assert run(buggy, label, "float32").verdict == "passed"
    assert run(fixed, label, "float32").verdict == "failed"


def test_real_fused_adam_honours_found_inf_without_grad_scale():
    """The mechanism of PR 95847 on real torch: with grad_scale None and found_inf = 1 the fused step leaves
    the parameters unchanged (torch 2.13, fixed); without found_inf the NaN step is applied."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.Adam([p], fused=True)
    p.grad = torch.tensor([1.0, float("nan"), 1.0, 1.0])
    opt.grad_scale, opt.found_inf = None, torch.tensor(1.0)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(4))
    opt.found_inf = None
    opt.step()
    assert torch.isnan(p.detach()).any()


def test_capturable_transcript_is_torch_capturable_arithmetic():
    """The transcript's fixed form passes where lr = 0; its buggy form writes NaN exactly where v = 0 (the
    harness reports NaN parameters from finite inputs and a finite reference as a broken contract: verdict
    error)."""
    pytest.importorskip("torch")
    out = run(CapturableTranscript(buggy=False), "decay-zero-lr", "float32")
    assert out.verdict == "passed", out.message
    s = catalogue.get("decay-zero-lr")
    from adamconf.golden.store import load_golden
    from adamconf.reference.dialect import resolve_dialect

    g = load_golden(s, resolve_dialect("pytorch"))
    r = CapturableTranscript(buggy=True).start(s.config, g.params0, dtype="float32", device="cpu")
    r.step(g.grads[0])
    theta = r.params()
    assert np.isnan(theta[1]).all()  # the always-zero tensor: v = 0, lr = 0
    assert not np.isnan(theta[0]).any()


@pytest.mark.skipif(not (importlib.util.find_spec("torch") and __import__("torch").cuda.is_available()),
                    reason="needs CUDA: torch.optim.Adam(capturable=True) asserts a CUDA/XLA/HPU device")
def test_real_capturable_adam_on_cuda():
    """On a CUDA machine: the built-in torch.adam.capturable adapter on decay-zero-lr. torch <= 2.13 ships the
    0 / -0.0 denominator (caught as non-finite); a torch with PR 186444 passes."""
    import torch

    from adamconf.adapters.registry import load_adapter
    from adamconf.suites.runner import run_case

    import inspect

    out = run_case(load_adapter("torch.adam.capturable"), catalogue.get("decay-zero-lr"), "float32", "cuda")
    shipped = "bias_correction2_sqrt * step_size_neg" in inspect.getsource(torch.optim.adam._single_tensor_adam)
    # which code path (single-tensor or foreach capturable) the adapter takes on CUDA is torch's choice; either
    # it passes, or it is caught by the non-finite pattern (never by a budget: the rest is Adam)
    print(f"torch {torch.__version__}: single-tensor 0 / -0.0 formula present: {shipped}; verdict {out.verdict}")
    assert out.verdict == "passed" or "non-finite pattern differs" in out.message, out.message


def test_bf16_truncation():
    assert bf16_truncate(0.999) == 0.99609375 and bf16_truncate(0.9) == 0.8984375
    assert bf16_truncate(0.9999) == bf16_truncate(0.999)


def test_the_table_lists_every_bug():
    """docs/public-bugs.md is generated by benchmarks/public_bug_table.py; a new bug needs it regenerated."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "public-bugs.md").read_text()
    missing = [b.name for b in BUGS if f"`{b.name}`" not in text]
    assert not missing, f"regenerate docs/public-bugs.md (python benchmarks/public_bug_table.py): {missing}"
