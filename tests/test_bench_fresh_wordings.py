"""How benchmarks/bench_default_model.py turns a blind set's wordings into questions: which it
leaves out as trained, and which corpus task (so which exact reply) each one asks."""
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "corpora"))

import bench_default_model as bench  # noqa: E402
import make_dialogue as md  # noqa: E402


@pytest.fixture(scope="module")
def wide():
    return md.Corpus(md.DEFAULT_SEED_DIR, wide_phrasings=True)


@pytest.mark.parametrize("filed, wording, task", [
    ("day_after", "If it's {d} today, what will tomorrow be?", "tomorrow"),
    ("day_after", "ok so {d} is today. tomorrow is what", "tomorrow"),
    ("day_before", "It's {d} today. What was yesterday?", "yesterday"),
    ("day_after", "Which weekday succeeds {d}?", "day_after"),
    ("day_before", "Which day leads into {d}?", "day_before"),
    ("month_after", "What month comes after {m} this time tomorrow?", "month_after"),
    ("add", "what is {a} plus {b} tomorrow?", "add"),
])
def test_a_wording_is_asked_as_the_task_it_asks(wide, filed, wording, task):
    assert bench.task_asked(wide, filed, wording).name == task


def test_tomorrow_and_yesterday_wordings_are_scored_against_those_tasks_replies(wide):
    wordings = ["If it's {d} today, what will tomorrow be?", "Which weekday succeeds {d}?"]
    questions, asked, left_out, far = bench.fresh_questions(
        wide, random.Random(0), "day_after", wordings)
    assert asked == wordings and not left_out and len(questions) == 8 == len(far)
    for i, (q, want, key) in enumerate(questions):
        day = next(d for d in md.DAYS if d.lower() in q.lower())
        after = md.DAYS[(md.DAYS.index(day) + 1) % 7]
        assert want == key == (f"If today is {day}, tomorrow is {after}." if i % 2 == 0
                               else f"The day after {day} is {after}.")
    before = bench.fresh_questions(wide, random.Random(0), "day_before",
                                   ["{d} is today. What day was yesterday, then?"])[0]
    assert all(want.startswith("If today is ") and ", yesterday was " in want
               for _, want, _ in before)


def test_a_wording_another_task_trains_is_left_out_as_seen(wide):
    tasks = {t.name: t for t in wide.template_tasks}
    trained = "if today is {d}, what day is tomorrow?"
    assert trained in tasks["tomorrow"].train
    assert not bench.seen_in_training(tasks["day_after"], trained)
    questions, asked, left_out, _ = bench.fresh_questions(
        wide, random.Random(0), "day_after",
        [trained, "hey, " + trained, "Which weekday succeeds {d}?"])
    assert left_out == [trained, "hey, " + trained]
    assert asked == ["Which weekday succeeds {d}?"] and len(questions) == 4
