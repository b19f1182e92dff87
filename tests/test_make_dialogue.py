"""corpora/make_dialogue.py: the wide phrasings (issue 23) widen the corpus of the default model's
fourth build phase without changing the corpus of its first three, and the wordings held out of
training stay out of it."""

import functools
import hashlib
import json
import random
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "corpora"))

import make_dialogue as md  # noqa: E402


# The generator's rounds of wide wordings, in the order they were added; a round's test
# compares the corpus with it on and off.
ROUNDS = ("FRAMED", "SENTENCES", "CUES", "TURNS", "MIRRORS", "BALANCE")
_AS_IMPORTED = {n: getattr(md, n) for n in ROUNDS + ("MORE_LEAD_INS", "WIDE_WEIGHT",
                                                     "CALENDAR_SHARE")}


@functools.cache
def _wide_template_tasks(off):
    for name, value in _AS_IMPORTED.items():  # no test left a setting of its own in place
        assert getattr(md, name) is value, name
    assert all(_AS_IMPORTED[n] for n in ROUNDS)
    try:
        for name in off:
            setattr(md, name, {})
        return tuple(md.Corpus(md.DEFAULT_SEED_DIR, wide_phrasings=True).template_tasks)
    finally:
        for name in off:
            setattr(md, name, _AS_IMPORTED[name])


def wide_tasks(*off):
    """The wide corpus's template tasks by name, with the rounds named in off switched off
    (each an empty dict): built once for this file for each set of rounds, for the tests
    that read them and change nothing (the rounds' tests share their corpora with and
    without each later round)."""
    assert set(off) <= set(ROUNDS), off
    return {t.name: t for t in _wide_template_tasks(tuple(sorted(off)))}


@functools.cache
def _narrow_template_tasks():
    return tuple(md.Corpus(md.DEFAULT_SEED_DIR).template_tasks)


def narrow_tasks():
    """The narrow corpus's template tasks by name, built once for this file."""
    return {t.name: t for t in _narrow_template_tasks()}


def sha(lines):
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def lists_digest(tasks, *later):
    """SHA-256 of every task's phrasing lists, in order: training, wide, held out, the fifth
    round's held out, then the held-out lists named in later (e.g. "cue_test"). The rounds'
    tests pin it to show that a new round leaves the earlier lists as they were."""
    lists = json.dumps([(t.name, t.train, t.wide, t.test, t.framed_test,
                         *(getattr(t, a) for a in later)) for t in tasks])
    return hashlib.sha256(lists.encode()).hexdigest()


@pytest.mark.parametrize("name_order, train_sha", [
    (True, "24180aa596aec140a974ecb5e30b903c79d134b821c027b38dd6431cfdcc25a6"),
    (False, "c6acf4fee7486ee49c81c557d56e39344d6a9afb9333da9ad5c7ea1e66d53257"),
])
def test_without_wide_phrasings_the_corpus_is_what_it_was(name_order, train_sha):
    # Made by the generator before the wide phrasings were added (seed 1337, 500 conversations,
    # 300 test questions): the first three build phases must still be reproducible.
    train, _, test, _ = md.generate(1337, 500, md.DEFAULT_SEED_DIR, 300,
                                    name_order_phrasings=name_order)
    assert sha(train) == train_sha
    assert sha(test) == "51dcef944401058241861fc5310280afa90def92f560d5cee554c99ccbb0e800"


def test_wide_phrasings_are_split_by_hash_and_the_issue_wordings_held_out():
    narrow = narrow_tasks()
    wide = wide_tasks()
    assert not any(t.wide for t in narrow.values())
    held_out_new = 0
    for name in md.WIDE_PHRASINGS:
        w, n = wide[name], narrow[name]
        new_test = w.test[len(n.test):]
        assert w.test[:len(n.test)] == n.test and w.train == n.train
        assert w.wide, name
        keys = {md.normalize(t) for t in w.train + w.wide}
        assert not keys & {md.normalize(t) for t in w.test}, name
        # (the fifth and seventh rounds' wordings are held out by their core: tests below)
        framed = set(md.framed(name)) | {t for _, ws in md.cue_cores(name) for t in ws} | {
            t for _, ws in md.turn_cores(name) + md.mirror_cores(name) + md.balance_cores(name)
            for t in ws}
        for t in new_test:
            if t in (w.framed_test + w.cue_test + w.turn_test + w.mirror_test
                     + w.balance_test):
                continue
            forced = {md.normalize(x) for x in md.WIDE_PHRASINGS[name].get("test_only", [])}
            assert md.phrasing_is_heldout(name, t) or md.normalize(t) in forced, t
        assert not any(md.phrasing_is_heldout(name, t) for t in w.wide if t not in framed)
        held_out_new += len(new_test)
    assert held_out_new > 100  # about 1 in 5 of the wide phrasings
    assert "please add {a} to {b}" in wide["add"].test
    assert "what does {a} plus {b} make?" in wide["add"].test
    assert "what is {cs} capital city?" in wide["capital"].test


ISSUE_WORDINGS = [re.compile(p, re.I) for p in (
    r"^please add \d+ to \d+\??$", r"^what does \d+ plus \d+ make\??$",
    r"^what is .+'s? capital city\??$")]


def test_the_wide_training_file_never_asks_the_held_out_wordings():
    train, stats, test, _ = md.generate(1337, 4000, md.DEFAULT_SEED_DIR, 2000,
                                        wide_phrasings=True)
    users = [m["content"] for line in train for m in json.loads(line)["messages"]
             if m["role"] == "user"]
    for pattern in ISSUE_WORDINGS:
        assert not any(pattern.match(u) for u in users), pattern.pattern
    # The wide phrasings are there (about half the questions of a widened task) ...
    assert any(re.match(r"^(can you|could you|would you|now|help me|try to) add \d+ to \d+\??$", u,
                        re.I) for u in users)
    assert any(re.search(r"\bwhat do \d+ and \d+ make\b", u, re.I) for u in users)
    # ... the ones built from parts too (make_dialogue.PARTS) ...
    assert any(re.match(r"^(please )?(sum|total)( up)? \d+ and \d+", u, re.I) for u in users)
    assert any(re.match(r"^I wonder (what|which city) .*capital", u, re.I) for u in users)
    assert any("'s capital" in u for u in users)
    # ... and the test split asks the held-out ones (the generator checks they are not in
    # training).
    asked = [json.loads(line)["messages"][0]["content"] for line in test]
    assert any(p.match(q) for q in asked for p in ISSUE_WORDINGS)


def test_near_is_one_word_edit_at_most():
    # near() skips word_edits' table for speed; it must say what word_edits(a, b) <= 1 says.
    rng = random.Random(3)
    words = ["what", "is", "{m}", "after", "which"]
    for _ in range(20000):
        a, b = (" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in "ab")
        assert md.near(a, b) == (md.word_edits(a, b) <= 1), (a, b)
    assert md.near("what is after {m}", "what comes after {m}")
    assert md.near("what is after {m}", "what is right after {m}")
    assert not md.near("what is after {m}", "after {m} is what")


def test_possessives_of_names_ending_in_s():
    cap = wide_tasks()["capital"]
    import random
    rng = random.Random(0)
    f = {"name": "Netherlands", "full": "the Netherlands", "capital": "Amsterdam",
         "continent": "Europe"}
    seen = {cap.fields(rng, f)["cs"] for _ in range(200)}
    assert seen <= {"the Netherlands'", "Netherlands'", "the netherlands'", "netherlands'"}


def test_no_lead_in_or_tail_turns_a_training_phrasing_into_a_held_out_one():
    # chat_around wraps a quarter of the wide corpus's template questions; if a lead-in such as
    # "tell me " or a tail such as " please" were added, a wrapped training question could be a
    # held-out one ("tell me {a} + {b}").
    assert md.chat_cores("Hey, what is {a} + {b}? thanks") >= {"what is {a}+{b}"}
    assert md.chat_cores("what is {a} + {b}?, thank you") >= {"what is {a}+{b}"}
    wide = wide_tasks()
    for task in wide.values():
        keys = {md.bare(t) for t in task.train + task.wide}
        for held in task.test:
            assert not md.chat_cores(held) & keys, held
    # And the check sees a wrapping when there is one ...
    wrapped = "Quick question: " + "what is {a} + {b}?" + " if you know"
    assert md.chat_cores(wrapped) & {md.bare("what is {a} + {b}?")}
    # ... also without the lead-in's punctuation: "I wonder how many letters are in {w}" (built
    # from parts, held out by hash) is how "I wonder, " + "how many letters are in {w}?" reads,
    # so it is not a held-out wording.
    assert md.chat_cores("I wonder how many letters are in {w}") & {
        md.bare("how many letters are in {w}?")}
    assert "I wonder how many letters are in {w}" in md.composed("count")
    assert "I wonder how many letters are in {w}" not in wide["count"].test + wide["count"].wide


def test_the_wide_corpus_wraps_some_questions_in_chat_and_asks_weak_skills_more():
    narrow = narrow_tasks()
    wide = wide_tasks()
    assert not any(t.chatty for t in narrow.values()) and all(t.chatty for t in wide.values())
    for name, factor in md.WIDE_WEIGHT.items():
        assert wide[name].weight == pytest.approx(narrow[name].weight * factor)
    assert wide["add"].weight == narrow["add"].weight

    train, stats, _, _ = md.generate(1337, 3000, md.DEFAULT_SEED_DIR, 300, wide_phrasings=True)
    turns = [json.loads(line)["messages"] for line in train]
    pairs = [(q["content"], a["content"]) for ms in turns for q, a in zip(ms[::2], ms[1::2])]
    leads = tuple(lead.lower() for lead in md.LEAD_INS + md.MORE_LEAD_INS)
    wrapped = [(q, a) for q, a in pairs if q.lower().startswith(leads)]
    assert 0.05 < len(wrapped) / len(pairs) < 0.3
    # The answer does not change: a wrapped sum is answered as the bare one would be.
    sums = [(q, a) for q, a in wrapped if re.fullmatch(r"\d+ \+ \d+ = -?\d+\.", a)]
    assert sums
    for q, a in sums:
        x, y = re.findall(r"\d+", a)[:2]
        assert x in q and y in q
    tails = tuple(t.lower() for t in md.TAILS)
    assert any(q.lower().endswith(tails) for q, _ in pairs)


def test_the_wide_corpus_asks_differences_of_close_numbers_more_and_never_held_out_pairs():
    narrow = narrow_tasks()
    wide = wide_tasks()
    rng = random.Random(5)
    # Uniform draws: 1 in 9 pairs is of two 1-digit numbers, all of them close.
    for corpus, lo, hi, close_lo, close_hi in ((narrow, 0.0, 0.02, 0.1, 0.25),
                                               (wide, 0.04, 0.15, 0.3, 0.6)):
        drawn = [corpus["sub"].sample(rng) for _ in range(3000)]
        equal = sum(a == b for a, b in drawn) / len(drawn)
        assert lo <= equal <= hi, equal
        close = sum(abs(a - b) <= 12 for a, b in drawn) / len(drawn)
        assert close_lo <= close <= close_hi, close
    # The draw reaches held-out pairs (about 1 in 10); the questions never do.
    drawn = [wide["sub"].sample(rng) for _ in range(3000)]
    assert sum(md.pair_is_heldout(a, b) for a, b in drawn) > 100
    assert not any(md.pair_is_heldout(*wide["sub"].pick(rng)) for _ in range(3000))
    # Sums keep the uniform draw.
    assert sum(a == b for a, b in (wide["add"].pick(rng) for _ in range(3000))) < 60


def test_wordings_built_from_parts_are_in_the_wide_corpus_and_split_by_hash():
    wide = wide_tasks()
    for name in md.PARTS:
        built = {md.normalize(t) for t in md.composed(name)}
        task = wide[name]
        placed = {md.normalize(t) for t in task.train + task.wide + task.test}
        seen = {md.bare(t) for t in task.train + task.wide}
        # Each is placed, or left out as a training wording read without punctuation.
        assert all(md.normalize(t) in placed or md.chat_cores(t) & seen
                   for t in md.composed(name)), name
        assert len(built & {md.normalize(t) for t in task.wide}) > 0.6 * len(built), name
    assert "I wonder what {a} and {b} add up to" in md.composed("add")
    assert "find the month preceding {m}" in md.composed("month_before")


def test_the_fifth_round_adds_framed_wordings_and_leaves_the_earlier_lists_as_they_were(
        monkeypatch):
    later = ("CUES", "TURNS", "MIRRORS", "BALANCE")  # the later rounds: their own tests below
    wide = wide_tasks(*later)
    before = wide_tasks("FRAMED", "SENTENCES", *later)  # the sixth round: its own test below
    for name in before:
        # The earlier wordings keep their places and order; the new ones come after them.
        assert wide[name].wide[:len(before[name].wide)] == before[name].wide, name
        assert wide[name].test == before[name].test + wide[name].framed_test, name
    held_cores = 0
    for name in md.FRAMED:
        task, old = wide[name], before[name]
        core_of = {w: (core, md.phrasing_is_heldout(name, core))
                   for core, ws in md.framed_cores(name) for w in ws}
        new_wide = task.wide[len(old.wide):]
        assert len(new_wide) > 0.4 * len(core_of), name
        # Held out a core at a time: "{w} has how many letters" in all its frames or in none.
        assert all(core_of[t][1] for t in task.framed_test), name
        assert not any(core_of[t][1] for t in new_wide), name
        held_cores += len({core_of[t][0] for t in task.framed_test})
        # No held-out wording, earlier or new (nor its chat cores), is inside a training one.
        trained = [f" {md.bare(t)} " for t in task.train + task.wide]
        for held in task.test:
            for c in md.chat_cores(held):
                assert not any(f" {c} " in t for t in trained[len(old.train) + len(old.wide):]), (
                    name, held)
        for held in task.framed_test:
            assert not any(f" {md.bare(held)} " in t for t in trained), (name, held)
    assert held_cores >= 20
    # A held-out list wording stays unseen even where FRAMED would build it inside another:
    # with "{w} is how many letters long" (held out in the lists) among the predicates, "tell
    # me, {w} is how many letters long?" holds it whole, and "so {w} is how many letters long"
    # would read as it after the lead-in "so, ".
    assert "{w} is how many letters long?" in wide["count"].test
    count = dict(md.FRAMED["count"], preds=["{w} is how many letters long"],
                 topics=[("{w}", ["so {w} is how many letters long"])])
    monkeypatch.setattr(md, "FRAMED", {"count": count})
    assert "tell me, {w} is how many letters long?" in md.framed("count")
    twin = {t.name: t for t in md.Corpus(md.DEFAULT_SEED_DIR,
                                         wide_phrasings=True).template_tasks}["count"]
    assert twin.test[:len(before["count"].test)] == before["count"].test
    assert not any("is how many letters long" in t for t in twin.wide + twin.framed_test)
    monkeypatch.undo()
    # Stories: each with every thing; differences only with money or points.
    assert len([t for t in md.framed("add") if "apples" in t]) == len(md.FRAMED["add"]["stories"])
    assert all(not any(x in t for x in ("apples", "eggs", "books")) for t in md.framed("sub"))
    assert "{w} has how many letters?" in md.framed("count")
    assert "I always forget {cs} capital, what is it again?" in md.framed("capital")


def test_the_wide_training_file_asks_word_problems_and_item_first_questions():
    train, _, _, _ = md.generate(1337, 4000, md.DEFAULT_SEED_DIR, 600, wide_phrasings=True)
    convs = [json.loads(line)["messages"] for line in train]
    pairs = [(m["content"], n["content"]) for ms in convs
             for m, n in zip(ms[::2], ms[1::2])]
    story = [(q, a) for q, a in pairs
             if re.search(r"\bI (had|have) \d+ [a-z]+ and\b", q, re.I)]
    assert story
    for q, a in story:
        # The answer is the sum or difference of the story's numbers, in their order; less than
        # nothing only of money or points.
        x, y = map(int, re.findall(r"\d+", q))
        assert a in (f"{x} + {y} = {x + y}.", f"{x} - {y} = {x - y}."), (q, a)
        if x < y and "-" in a:
            assert re.search(r"dollars|euros|points", q), q
    assert any(re.match(r"^\S+ (is|has|contains)\b.* how many letters", q, re.I) for q, _ in pairs)


def test_the_sixth_round_places_its_sentences_one_at_a_time_far_from_held_out_ones():
    later = ("CUES", "TURNS", "MIRRORS", "BALANCE")  # the later rounds: their own tests below
    wide = wide_tasks(*later)
    before = wide_tasks("SENTENCES", *later)
    # The rounds before it are the fifth round's lists, wording for wording (those of 10a68d5):
    # the sixth round adds sentences and takes nothing away.
    assert lists_digest(before.values()) == (
        "cbfe53fd4c79bdab0d67f2c5e7f284be58c8ab048c645f934d1991aceb5f3fa5")
    placed = held = 0
    for name, sentences in md.SENTENCES.items():
        task, old = wide[name], before[name]
        assert task.wide[:len(old.wide)] == old.wide, name
        new_wide = task.wide[len(old.wide):]
        new_held = [t for t in task.framed_test if t not in old.framed_test]
        # Every sentence is placed (none equals or holds an earlier held-out wording), each
        # its own core, held out by the hash.
        assert sorted(new_wide + new_held) == sorted(sentences), name
        assert all(md.phrasing_is_heldout(name, t) for t in new_held), name
        assert not any(md.phrasing_is_heldout(name, t) for t in new_wide), name
        placed += len(new_wide)
        held += len(new_held)
        # No trained sentence is one word from a wording held out before it ("{d} comes after
        # which day" against "{d} comes right after which day?"), and no held-out sentence is
        # one word from a trained wording: either would test a near copy.
        earlier = [c for t in old.test for c in md.chat_cores(t)]
        trained = {c for t in task.train + task.wide for c in md.chat_cores(t)}
        for t in new_wide:
            assert not any(md.word_edits(c, e) <= 1 for c in md.chat_cores(t) for e in earlier), (
                name, t)
        for t in new_held:
            assert not any(md.word_edits(c, e) <= 1 for c in md.chat_cores(t) for e in trained), (
                name, t)
    assert placed >= 80 and held >= 15, (placed, held)
    assert md.chat_cores("For a quiz: what is 2 plus 3?") >= {"what is 2 plus 3"}


def test_the_wide_corpus_asks_the_calendar_neighbours_in_proportion_to_their_wordings(
        monkeypatch):
    # The seventh try's corpus gave the day after 0.34% of its questions for about 240 wordings
    # (one or two questions a wording); the narrow corpora keep their weights (pinned above).
    neighbours = ("day_after", "day_before", "month_after", "month_before")

    def shares(wide):
        c = md.Corpus(md.DEFAULT_SEED_DIR, wide_phrasings=wide)
        total = sum(c.weights)
        return {t.name: w / total for t, w in zip(c.tasks, c.weights)}
    wide = shares(True)
    monkeypatch.setattr(md, "WIDE_WEIGHT", {k: v for k, v in md.WIDE_WEIGHT.items()
                                            if k not in neighbours})
    monkeypatch.setattr(md, "CALENDAR_SHARE", {"narrow": 10, "wide": 10})
    before = shares(True)
    for name in neighbours:
        assert before[name] < 0.004 and wide[name] > 0.015, name
    # The other calendar tasks keep nearly their share (the calendar's grows to make room);
    # the other skills give up a little.
    for name, share in before.items():
        if name not in neighbours:
            assert 0.8 < wide[name] / share < 1.0, name


def assert_placed_a_core_at_a_time(name, task, old, held, cores, heldout=None):
    """A round placed by make_dialogue.place_cues, against the task as the rounds before it
    left it (old): those keep their places and order and the new wordings come after them; a
    core is held out in all its frames or in none; no new training wording holds an earlier
    held-out one or is one word from it, and no held-out one is one word from, or held whole
    by, a training wording, compared with contractions written out and dashes as spaces ("{w},
    what is the letter count?" is one word from the held-out "{w}, what's its letter count?").
    heldout(core, wording), where given, says which wordings are held out in place of the
    core's hash (the eleventh round holds out frames). Returns the new training wordings and
    the held-out cores."""
    assert task.wide[:len(old.wide)] == old.wide and task.train == old.train, name
    assert task.test == old.test + held, name
    core_of = {w: core for core, ws in cores for w in ws}
    new_wide = task.wide[len(old.wide):]
    assert set(new_wide) <= set(core_of) and set(held) <= set(core_of), name
    if heldout is None:
        def heldout(core, _):
            return md.phrasing_is_heldout(name, core)
    assert all(heldout(core_of[t], t) for t in held), name
    assert not any(heldout(core_of[t], t) for t in new_wide), name

    def forms(t):
        return {md.near_form(c) for c in md.chat_cores(t)}
    earlier = set().union(*map(forms, old.test))
    trained = set().union(*map(forms, task.train + task.wide))
    for t in new_wide:
        for c in forms(t):
            assert not any(f" {e} " in f" {c} " or md.near(c, e) for e in earlier), (name, t)
    for t in held:
        for c in forms(t):
            assert not any(f" {c} " in f" {b} " or md.near(c, b) for b in trained), (name, t)
    return new_wide, {core_of[t] for t in held}


def assert_only_in(tasks, name, wording):
    """The wording is one of the task's (trained or held out) and of no other calendar
    neighbour's."""
    for other in ("day_after", "day_before", "month_after", "month_before"):
        t = tasks[other]
        has = md.normalize(wording) in {md.normalize(w) for w in t.train + t.wide + t.test}
        assert has == (other == name), (other, wording)


def test_the_seventh_round_puts_each_skill_word_in_training_held_out_a_part_at_a_time(
        monkeypatch):
    later = ("TURNS", "MIRRORS", "BALANCE")  # the later rounds: their own tests below
    wide = wide_tasks(*later)
    before = wide_tasks("CUES", *later)
    # The rounds before it are the sixth round's lists, wording for wording (those of 8ca2246),
    # with the new lead-ins and without them: the openers change no earlier placement.
    pinned = "9930e6cccf33f08f4b9854c02cf599dd6478baf6adfa414cafd75931a2629f7c"
    assert lists_digest(before.values()) == pinned
    for name in ("CUES",) + later:
        monkeypatch.setattr(md, name, {})
    monkeypatch.setattr(md, "MORE_LEAD_INS", [])
    tasks = md.Corpus(md.DEFAULT_SEED_DIR, wide_phrasings=True).template_tasks
    assert lists_digest(tasks) == pinned
    monkeypatch.undo()
    held_parts = 0
    for name in md.CUES:
        task = wide[name]
        _, held = assert_placed_a_core_at_a_time(name, task, before[name], task.cue_test,
                                                 md.cue_cores(name))
        held_parts += len(held)
    assert held_parts >= 20
    assert md.near(md.near_form("{w}, what is the letter count"),
                   md.near_form("{w}, what's its letter count"))
    assert md.near_form("{c} - which continent") == "{c} which continent"
    # The words this round is for are now trained, each in several wordings.
    for name, word in (("reverse", "flip"), ("count", "tally"), ("spell", "one by one"),
                       ("month_before", "last month"), ("sub", "lower"), ("add", "more than"),
                       ("continent", "part of the world")):
        assert sum(word in t for t in wide[name].wide) >= 5, (name, word)
    # Openers as people type them are lead-ins, read through like the others.
    assert md.chat_cores("Yo, what is {a} + {b}?") >= {"what is {a}+{b}"}
    assert md.chat_cores("hey bot... how many letters are in {w}? thanks") >= {
        "how many letters are in {w}"}
    assert "quick q: " in md.MORE_LEAD_INS


def test_the_eighth_round_turns_the_calendar_relations_round_held_out_a_core_at_a_time():
    later = ("MIRRORS", "BALANCE")  # the later rounds: their own tests below
    wide = wide_tasks(*later)
    before = wide_tasks("TURNS", *later)
    # The rounds before it are the seventh round's lists, wording for wording (those of
    # 79d9c43, the tenth try's corpus).
    assert lists_digest(before.values(), "cue_test") == (
        "421c350681326ef9f714259733676c17f6c5d5fa5fc0505e4e05354c97075627")
    assert set(md.TURNS) == {"day_after", "day_before", "month_after", "month_before"}
    placed = held_cores = 0
    for name in md.TURNS:
        task = wide[name]
        assert task.cue_test == before[name].cue_test, name
        # A core is a relation, or a given clause in all its questions and links.
        new_wide, held = assert_placed_a_core_at_a_time(name, task, before[name],
                                                        task.turn_test, md.turn_cores(name))
        placed += len(new_wide)
        held_cores += len(held)
        # The other way's words now reach training in this task, many times (2 to 5 of about
        # 300 wordings before this round).
        other = {"after": r"\b(before|precedes?|preceded|yesterday|last)\b",
                 "before": r"\b(after|follows?|followed|tomorrow|next)\b"}[name.split("_")[1]]
        assert sum(bool(re.search(other, t)) for t in task.train + task.wide) >= 140, name
    # Each kind of wording lands in the task its meaning asks for (read by hand, not built the
    # way the generator builds them): the item on the other side of the relation, a passive, a
    # verb, and a given yesterday / tomorrow / last month / next month.
    for name, wording in (
            ("day_after", "{d} comes directly before which day?"),
            ("day_after", "which day is preceded by {d}?"),
            ("day_after", "what day does {d} precede?"),
            ("day_after", "if {d} was yesterday, what is today?"),
            ("day_before", "which day is followed by {d}?"),
            ("day_before", "{d} is just after which day?"),
            ("day_before", "tomorrow will be {d}, what day is it today?"),
            ("month_after", "last month was {m}. what is this month?"),
            ("month_after", "what month is {m} just before?"),
            ("month_before", "we will be in {m} next month, what is this month?"),
            ("month_before", "which month does {m} follow?")):
        assert_only_in(wide, name, wording)
    # No relation is asked "in the week" or "in the year": Sunday comes before no day of the
    # week, December before no month of the year.
    assert not any(" in the week" in w or " in the year" in w
                   for name in md.TURNS for _, ws in md.turn_cores(name) for w in ws)
    assert placed >= 700 and held_cores >= 10, (placed, held_cores)


def test_the_ninth_round_mirrors_each_turned_relation_in_the_other_task():
    wide = wide_tasks("BALANCE")  # the eleventh round: its own test below
    before = wide_tasks("MIRRORS", "BALANCE")
    # The rounds before it are the eighth round's lists, wording for wording (those of 08990f2,
    # the eleventh try's corpus).
    assert lists_digest(before.values(), "cue_test", "turn_test") == (
        "271b638b6db0721da5c0059c69e3bed49bc3ac6838d3c1909fce21865267dbe4")
    placed = 0
    for name in md.MIRRORS:
        task = wide[name]
        new_wide, _ = assert_placed_a_core_at_a_time(name, task, before[name], task.mirror_test,
                                                     md.mirror_cores(name))
        placed += len(new_wide)
    assert placed >= 300, placed
    # Each mirror's pair in _MIRROR_PAIRS is a turned wording of the other task, in its words.
    for name in md.MIRRORS:
        unit, way = name.split("_")
        other = {"after": "before", "before": "after"}[way]
        base, third, passive = md._RELATION_VERBS[way]
        words = dict(x="{%s}" % unit[0], u=unit, rel=way, base=base, third=third,
                     passive=passive)
        for turned, _ in md._MIRROR_PAIRS:
            assert turned.format(**words) in md.TURNS[f"{unit}_{other}"]["turned"], (name, turned)
    # The eleventh try's misses: phrases that stood for one way now stand in both. Counted in
    # the training wordings of each unit's after and before tasks ("followed by" was 0 and 8,
    # "next month" 26 and 75 before this round).
    def count(name, phrase):
        t = wide[name]
        return sum(phrase in f" {w} " for w in t.train + t.wide)
    for unit, phrase in (("day", "followed by"), ("month", "followed by"),
                         ("month", "next month"), ("month", "last month")):
        after, before_ = count(f"{unit}_after", phrase), count(f"{unit}_before", phrase)
        assert after and before_ and max(after, before_) <= 3 * min(after, before_), (
            unit, phrase, after, before_)
    # Read by hand: the mirrors land in the task their meaning asks for.
    for name, wording in (
            ("day_after", "do you know: {d} is immediately followed by which day?"),
            ("month_after", "{m} is directly followed by what month?"),
            ("month_after", "it's {m} now, what is next month?"),
            ("day_before", "which day precedes {d}?"),
            ("month_before", "{m} is preceded by which month?"),
            ("month_before", "this month is {m}, what was last month?")):
        assert_only_in(wide, name, wording)


def test_the_eleventh_round_trains_each_relation_phrase_both_ways_held_out_by_frame():
    wide = wide_tasks()
    before = wide_tasks("BALANCE")
    # The rounds before it are the ninth round's lists, wording for wording (those of 720b2ff,
    # the shipped mean of four's corpus).
    assert lists_digest(before.values(), "cue_test", "turn_test", "mirror_test") == (
        "2501bf5bc2e45cb73bfb8f3bb2976392a279b34dbb6b1d7a8934d0675cacba5e")
    assert set(md.BALANCE) == {"day_after", "day_before", "month_after", "month_before"}
    for name in md.BALANCE:
        task = wide[name]
        assert task.mirror_test == before[name].mirror_test, name
        new_wide, _ = assert_placed_a_core_at_a_time(
            name, task, before[name], task.balance_test, md.balance_cores(name),
            lambda core, t: md.balance_heldout(name, core, t))
        # Held out by frame: most held-out wordings' cores are trained in another frame (the
        # rest are cores whose training frames were one word from an earlier held-out wording,
        # "{d} is directly followed by which day?" from "{d} is followed by which day?", and
        # so were not placed).
        seen = {md.normalize(w) for w in task.train + task.wide}
        with_sibling = 0
        for t in task.balance_test:
            core = next(c for c in md.BALANCE[name] if t in md.balance_cores_of(c))
            with_sibling += any(md.normalize(w) in seen
                                for w in md.balance_cores_of(core) if w != t)
        assert with_sibling >= 0.8 * len(task.balance_test), (name, with_sibling)
        assert len(new_wide) >= 150 and len(task.balance_test) >= 80, (name, len(new_wide))

    # Each relation phrase is trained in both tasks of its unit, with the item on the side its
    # meaning asks for. Before this round "preceded by" was in no training wording of the month
    # after, and "ends", "begins", "plus" and "minus" in none at all.
    def trained(name, pattern):
        t = wide[name]
        return sum(bool(re.search(pattern, w)) for w in t.train + t.wide)
    for unit, x in (("day", r"\{d\}"), ("month", r"\{m\}")):
        for verb, way in (("followed", "after"), ("preceded", "before")):
            other = {"after": "before", "before": "after"}[way]
            item_first = rf"{x} is (\w+ )?{verb} by"  # the one after (before) x
            item_last = rf"{verb} by {x}"  # the one x comes after (before)
            assert trained(f"{unit}_{way}", item_first) >= 4, (unit, verb)
            assert trained(f"{unit}_{other}", item_last) >= 4, (unit, verb)
            assert not trained(f"{unit}_{other}", item_first), (unit, verb)
            assert not trained(f"{unit}_{way}", item_last), (unit, verb)
        assert trained(f"{unit}_after", rf"once {x} ends") >= 4, unit
        assert trained(f"{unit}_before", rf"{x} begins once") >= 4, unit
        assert trained(f"{unit}_after", rf"{x} plus one") >= 4, unit
        assert trained(f"{unit}_before", rf"{x} minus one") >= 4, unit
        # "ends" and "begins" are each said of the item asked for in both tasks: the blind
        # "Which month ends just as {m} begins?" (the month before) got the month after when
        # only "which month begins" opened a trained question.
        for verb, way in (("ends", "before"), ("begins", "after")):
            asked = rf"^(do you know: )?(which|what) {unit}( of the \w+)? {verb}"
            other = {"after": "before", "before": "after"}[way]
            assert trained(f"{unit}_{way}", asked) >= 4, (unit, verb)
            assert not trained(f"{unit}_{other}", asked), (unit, verb)
    # No wording of the round puts the item asked for after "is" at its end ("{m} plus one
    # month is which month?"): it reads like the answer sentence, and the seventeenth try,
    # trained on such wordings, answered "The month before January is what?".
    answer_shaped = re.compile(r"\bis (which|what) (day|month)( of the (week|year))?\?$")
    for name in md.BALANCE:
        assert not [c for c in md.BALANCE[name] if answer_shaped.search(c + "?")], name
    # Read by hand: the round's wordings land in the task their meaning asks for.
    for name, wording in (
            ("month_after", "which month of the year is preceded by {m}?"),
            ("month_after", "once {m} ends, which month begins?"),
            ("month_before", "{m} begins once which month ends?"),
            ("day_before", "which day is {d} minus one day?"),
            ("day_after", "which day is one day later than {d}?"),
            ("month_before", "which month ends as {m} begins?"),
            ("month_after", "which month begins as {m} ends?"),
            ("day_before", "{d} begins as what day ends?"),
            ("day_before", "what day of the week is followed by {d}?")):
        assert_only_in(wide, name, wording)
