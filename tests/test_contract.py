"""The A/B gate's contract with a base revision's variants (bench/execution/contract.py): each older Case version is
measured under what it can express, from one table."""

from __future__ import annotations

from dataclasses import asdict, make_dataclass

import pytest

import attention_variants
from attention_variants.case import Case
from bench.execution import contract
from bench.execution.contract import CURRENT, DERIVED, as_case, version_of
from bench.measure.case import measure_case
from bench.measure.settings import Settings

SHAPE = dict(variant="im2col", batch=1, height=7, width=7, heads=1, head_dim=4, kernel_size=3)
SETTINGS = Settings(threads=1, warmup_s=0.0, min_run_s=0.01, max_run_s=0.02)
BASE_FIELDS = [("variant", str), ("device", str, "cpu"), ("dtype", str, "float32"), ("batch", int, 1), ("height", int, 28),
               ("width", int, 28), ("heads", int, 2), ("head_dim", int, 32), ("kernel_size", int, 7),
               ("pass_name", str, "forward")]
# The Case of each older contract version, as a base revision defined it.
OLDER = {
    1: make_dataclass("CaseV1", [*BASE_FIELDS, ("compiled", bool, False)], frozen=True),
    2: make_dataclass("CaseV2", [*BASE_FIELDS, ("compiled", bool, False), ("dilation", int, 1)], frozen=True),
    3: make_dataclass("CaseV3", [*BASE_FIELDS, ("runtime", str, "eager"), ("dilation", int, 1)], frozen=True),
}


def test_the_contract_derives_what_todays_case_derives():
    for case in (Case(**SHAPE), Case(**{**SHAPE, "runtime": "inductor", "pass_name": "forward_backward", "batch": 3})):
        assert {name: derive(case) for name, derive in DERIVED.items()} == {name: getattr(case, name) for name in DERIVED}


def test_an_older_case_is_answered_without_todays_case(monkeypatch):
    # In the base worker `attention_variants` is the base revision's: nothing of today's Case may be needed.
    monkeypatch.setattr(contract, "_answering", contract._answering.__wrapped__)
    monkeypatch.delattr(Case, "traced")
    monkeypatch.delattr(Case, "needs_grad")
    old = as_case(OLDER[1], asdict(Case(**SHAPE, runtime="inductor")))
    assert (old.traced, old.needs_grad) == (True, False)


def test_this_revision_declares_the_contract_the_harness_knows():
    assert attention_variants.CONTRACT == CURRENT == version_of(Case)
    assert {version: version_of(case_class) for version, case_class in OLDER.items()} == {1: 1, 2: 2, 3: 3}


@pytest.mark.parametrize("version", sorted(OLDER))
def test_an_older_case_answers_what_the_harness_reads_and_is_measured(version):
    old = as_case(OLDER[version], asdict(Case(**SHAPE, runtime="inductor")))
    assert (old.runtime, old.traced, old.dilation, old.extra, old.needs_grad) == ("inductor", True, 1, (), False)
    assert old.neighbour_elements == Case(**SHAPE).neighbour_elements and old.torch_dtype == Case(**SHAPE).torch_dtype
    eager = old.replace(runtime="eager", pass_name="forward_backward")
    assert (eager.runtime, eager.traced, eager.needs_grad, eager.height) == ("eager", False, True, 7)
    assert measure_case(eager.replace(pass_name="forward"), SETTINGS).status == "ok"


@pytest.mark.parametrize("version,changes,message", [
    (1, {"dilation": 2}, "predates dilation"),
    (2, {"runtime": "export"}, "predates the runtime axis: it cannot run runtime export"),
    (3, {"extra": (("tiles", 2),)}, "predates axes added by plugins"),
])
def test_a_case_an_older_contract_cannot_express_is_refused(version, changes, message):
    with pytest.raises(ValueError, match=message):
        as_case(OLDER[version], asdict(Case(**SHAPE, **changes)))


def test_todays_case_passes_through_and_a_newer_contract_is_refused(monkeypatch):
    case = Case(**SHAPE, runtime="export", dilation=2)
    assert as_case(Case, asdict(case)) == case
    monkeypatch.setattr(attention_variants, "CONTRACT", CURRENT + 1)
    with pytest.raises(ValueError, match=f"contract {CURRENT + 1}, newer than this harness's {CURRENT}"):
        as_case(Case, asdict(case))
