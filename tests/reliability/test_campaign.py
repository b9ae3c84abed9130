"""The standing abuse campaign (bench/abuse.py) holds: no crash, hang, lost item, stale file, reader error or code run.

The fast form runs with the suite: every API case and, in-process, every CLI case of the fast
selection (a few also through a real `embedspace` process), the web app's routes, crafted
callbacks and hostile uploads, 5 SIGKILLs and 1,000 reads during writes. The full form (every
case through a real process, 24 SIGKILLs, 20,000 reads) is marked slow. Both print the table;
``.venv/bin/python bench/abuse.py [--fast]`` prints it too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_campaign():
    spec = importlib.util.spec_from_file_location("abuse", ROOT / "bench" / "abuse.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["abuse"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


abuse = _load_campaign()


def _failures(report, *kinds: str) -> str:
    """The failing cases of ``kinds``, by name, after the table (empty when there are none)."""
    failures = {kind: names for kind, names in report.failures().items() if kind in kinds}
    if not failures:
        return ""
    lines = [report.table(), report.summary()]
    for kind, names in failures.items():
        lines += [f"{kind} ({len(names)}):"] + [f"  {name}" for name in names]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fast_report():
    report = abuse.run_campaign(abuse.Settings.for_mode(fast=True))
    print(report.table(), report.summary(), sep="\n")
    return report


def test_fast_campaign_tries_200_cases_5_kills_and_1000_reads(fast_report) -> None:
    surfaces = {surface: sum(result.surface == surface for result in fast_report.cases) for surface in ("cli", "api", "web")}
    assert surfaces["cli"] + surfaces["api"] >= 200, surfaces
    assert surfaces["cli"] >= 50 and surfaces["api"] >= 50 and surfaces["web"] >= 30, surfaces
    assert len(fast_report.kills) >= 5
    assert sum(run.reads for run in fast_report.concurrency) >= 1_000


def test_no_input_crashes_hangs_or_runs_code(fast_report) -> None:
    assert not _failures(fast_report, "crash", "hang", "code executed"), _failures(fast_report, "crash", "hang", "code executed")


def test_no_acknowledged_item_is_lost_and_no_stale_file_is_left(fast_report) -> None:
    assert not _failures(fast_report, "items lost", "stale files"), _failures(fast_report, "items lost", "stale files")


def test_readers_never_fail_while_another_process_writes(fast_report) -> None:
    assert not _failures(fast_report, "reader errors"), _failures(fast_report, "reader errors")


@pytest.mark.slow
def test_full_campaign_every_case_through_real_processes_24_kills_20000_reads() -> None:
    report = abuse.run_campaign(abuse.Settings.for_mode(fast=False))
    print(report.table(), report.summary(), sep="\n")
    assert len(report.kills) >= 20
    assert sum(run.reads for run in report.concurrency) >= 20_000
    kinds = ("crash", "hang", "code executed", "items lost", "stale files", "reader errors")
    assert not _failures(report, *kinds), _failures(report, *kinds)
