"""Judging one run: re-exports of ``reference.judge`` (the checks, the assessment and its findings)."""

from __future__ import annotations

from .judge import Assessment, Finding, judge_against

__all__ = ["Assessment", "Finding", "judge_against"]
