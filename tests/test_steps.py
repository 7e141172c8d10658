"""The run skeleton (installer/steps.py): a flat list of steps run in order with real stamps, the
fault points, the tracker and the one failure path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from installer import faults
from installer.errors import InstallerError
from installer.stamps import Stamps, StepRecord
from installer.steps import Finished, Step, StepRun, plan
from installer.tracker import StepTracker


@dataclass
class Box:
    """What the test's steps did, in order."""

    done: list[str] = field(default_factory=list)
    failures: list[InstallerError] = field(default_factory=list)


def did(name: str) -> Step[Box]:
    def apply(box: Box) -> StepRecord:
        box.done.append(name)
        return StepRecord(created=(f"{name} made",))

    return Step(name, f"doing {name}", 30.0, apply)


def waits(box: Box) -> None:
    box.done.append("wait")


WAIT: Step[Box] = Step("wait", "waiting", 60.0, waits, stamped=False)
QUIET: Step[Box] = Step("quiet", None, 5.0, lambda box: box.done.append("quiet"), stamped=False)


def test_the_plan_counts_the_steps_with_a_label() -> None:
    steps = [did("a"), QUIET, WAIT, did("b")]
    assert [(p.name, p.what, p.deadline_s) for p in plan(steps)] == [
        ("a", "doing a", 30.0),
        ("wait", "waiting", 60.0),
        ("b", "doing b", 30.0),
    ]


def test_steps_run_in_order_stamped_and_shown(tmp_path: Path) -> None:
    steps = [did("a"), QUIET, WAIT, did("b")]
    said: list[str] = []
    receipts: list[str] = []

    def write(text: str) -> tuple[bool, str]:
        receipts.append(text)
        return True, "written"

    tracker = StepTracker("Test run", plan(steps), "hint", write=write, say=said.append)
    stamps = Stamps(tmp_path / "stamps")
    box = Box()
    records = StepRun(steps, stamps, tracker).run(box)
    assert box.done == ["a", "quiet", "wait", "b"]
    assert [line.split(" (")[0] for line in said] == [
        "[1/3] doing a",
        "[2/3] waiting",
        "[3/3] doing b",
    ]
    assert "Step: 3 of 3, b (doing b)" in receipts[-1]
    assert stamps.done("a")
    assert stamps.done("b")
    assert not stamps.done("wait")
    assert not stamps.done("quiet")
    assert list(records) == ["a", "b"]  # what the steps that said something did


def test_a_resumed_run_skips_the_stamped_steps_and_keeps_their_records(tmp_path: Path) -> None:
    stamps = Stamps(tmp_path / "stamps")
    stamps.mark("a", StepRecord(created=("a made earlier",)))
    box = Box()
    records = StepRun([did("a"), WAIT, did("b")], stamps).run(box)
    assert box.done == ["wait", "b"]  # the wait runs again: it has no stamp
    assert records["a"].created == ("a made earlier",)


@pytest.mark.parametrize(
    ("point", "stamped"),
    [("before:b", False), ("effects:b", False), ("stamped:b", True), ("before:wait", False)],
)
def test_a_failure_at_each_fault_point_goes_to_the_one_failure_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str, stamped: bool
) -> None:
    monkeypatch.setattr(faults, "_armed", f"fail:{point}")
    stamps = Stamps(tmp_path / "stamps")
    box = Box()
    run = StepRun([did("a"), WAIT, did("b")], stamps)
    with pytest.raises(faults.InjectedFailure) as raised:
        run.run(box, box.failures.append)
    assert box.failures == [raised.value]  # handled once, then up as it was
    assert stamps.done("a")
    assert stamps.done("b") is stamped  # stamped only once its effects were durable
    assert list(run.records) == ["a"]


def test_a_bug_in_a_step_is_reported_as_our_error_without_its_traceback(tmp_path: Path) -> None:
    def broken(_box: Box) -> None:
        raise RuntimeError("a bug")

    box = Box()
    steps = [did("a"), Step("b", "doing b", 30.0, broken)]
    with pytest.raises(InstallerError) as raised:
        StepRun(steps, Stamps(tmp_path / "stamps")).run(box, box.failures.append)
    assert raised.value.message == "unexpected error (RuntimeError: a bug)"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert box.failures == [raised.value]
    assert not Stamps(tmp_path / "stamps").done("b")


def test_a_step_that_finds_nothing_more_to_do_ends_the_run(tmp_path: Path) -> None:
    def nothing(box: Box) -> None:
        box.done.append("check")
        raise Finished

    box = Box()
    steps = [did("a"), Step("check", None, 5.0, nothing, stamped=False), did("b")]
    records = StepRun(steps, Stamps(tmp_path / "stamps")).run(box, box.failures.append)
    assert box.done == ["a", "check"]
    assert box.failures == []
    assert list(records) == ["a"]


def test_a_step_over_a_part_of_the_run_s_context(tmp_path: Path) -> None:
    @dataclass
    class Outer:
        inner: Box

    outer = Outer(Box())
    step: Step[Outer] = did("a").over(lambda o: o.inner)
    assert (step.name, step.label, step.deadline_s, step.stamped) == ("a", "doing a", 30.0, True)
    StepRun([step], Stamps(tmp_path / "stamps")).run(outer)
    assert outer.inner.done == ["a"]


def test_a_handler_that_answers_the_failure_ends_the_run_without_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An update's way back: the handler runs it, then `Finished`: no error goes up."""
    monkeypatch.setattr(faults, "_armed", "fail:before:b")
    box = Box()

    def rolled_back(err: InstallerError) -> None:
        box.failures.append(err)
        box.done.append("way back")
        raise Finished

    records = StepRun([did("a"), did("b")], Stamps(tmp_path / "stamps")).run(box, rolled_back)
    assert box.done == ["a", "way back"]
    assert len(box.failures) == 1
    assert list(records) == ["a"]


def test_a_quiet_run_passes_over_what_an_earlier_run_did_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stamps = Stamps(tmp_path / "stamps")
    stamps.mark("a", StepRecord())
    steps = [did("a"), did("b")]
    said: list[str] = []
    tracker = StepTracker("Test run", plan(steps), "hint", say=said.append)
    with caplog.at_level("INFO", logger="clawdie.steps"):
        StepRun(steps, stamps, tracker, log=None, show_done=False).run(Box())
    assert [line.split(" (")[0] for line in said] == ["[2/2] doing b"]
    assert caplog.records == []


def test_a_step_timed_as_it_starts_runs_against_that_deadline() -> None:
    box = Box()
    step: Step[Box] = Step("copy", "copying", 30.0, did("copy").apply, False, lambda _b: 600.0)
    tracker = StepTracker("Test run", plan([step]), "hint", say=lambda _line: None)
    StepRun([step], tracker=tracker).run(box)
    assert tracker.step_deadline_s == 600.0
    assert step.over(lambda b: b).timed is not None  # kept over a part of a context


def test_a_run_that_words_its_own_failures_or_lets_them_up_as_raised() -> None:
    def broken(_box: Box) -> None:
        raise OSError(5, "Input/output error")

    steps = [Step("b", "doing b", 30.0, broken, stamped=False)]
    box = Box()

    def worded(err: Exception) -> InstallerError:
        return InstallerError(f"unexpected system error: {err}")

    with pytest.raises(InstallerError, match=r"unexpected system error: .*Input/output"):
        StepRun(steps, worded=worded).run(box, box.failures.append)
    with pytest.raises(OSError, match="Input/output error"):
        StepRun(steps, as_raised=True).run(box, box.failures.append)
    assert [f.message for f in box.failures] == [
        "unexpected system error: [Errno 5] Input/output error",
        "a system call failed: Input/output error",
    ]
