"""corpora/build_default.py's export: what ships in the package, and what it refuses to ship."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from charchat import preferences, store
from charchat.corpus import corpus_from_text
from charchat.trainer import TrainConfig, Trainer

from conftest import pattern_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "corpora"))

import build_default  # noqa: E402

TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, eval_interval=5)


def tiny_run(folder: Path, corpus_file: Path, text: str | None = None, **kw) -> Path:
    corpus_file.write_text(text or pattern_text(4000))
    corpus = corpus_from_text(corpus_file.read_text())
    Trainer(corpus, TrainConfig(**{**TINY, **kw}), out_dir=folder,
            corpus_paths=[str(corpus_file)]).run()
    return folder


@pytest.fixture
def quick(monkeypatch):
    # Regenerating the 100,000 conversations takes seconds: compare against a fixed hash.
    monkeypatch.setattr(build_default, "sha256_generated", lambda *a, **kw: "0" * 64)


def test_export_ships_float16_weights_and_portable_records(tmp_path, quick):
    run = tiny_run(tmp_path / "run", tmp_path / "train.txt", max_steps=12)
    dest = tmp_path / "pkg" / "default"
    build = build_default.export(dest, run)

    loaded = store.load_model(str(dest))
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    raw = torch.load(dest / store.WEIGHTS, weights_only=True)
    assert {v.dtype for v in raw["state_dict"].values()} == {torch.float16}
    assert build["stop_reason"] == "max_steps" and build["steps"] == 12
    assert build["recipe_matches"] is False  # a tiny run is not the recipe, and says so
    assert build["corpus"]["matches_generator"] is False
    assert build["float16_val_loss"]["float16"] == pytest.approx(
        build["float16_val_loss"]["float32"], abs=1e-3)
    # No absolute paths from the build machine go into the package.
    for name in ("build.json", "train_args.json", "corpus.json", "metrics.jsonl"):
        text = (dest / name).read_text()
        assert str(tmp_path) not in text, name
    assert json.loads((dest / "train_args.json").read_text())["corpus_paths"] == [
        "<outside the checkout>/train.txt"]
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in dest.iterdir())
    meta = store.read_meta(dest)
    assert meta["sampling"] == build_default.SAMPLING
    assert preferences.check_sampling(meta["sampling"]) is not None
    assert not dest.with_name("default.new").exists()


def test_export_refuses_a_stopped_run_unless_asked(tmp_path, quick):
    run = tiny_run(tmp_path / "run", tmp_path / "train.txt", max_steps=12)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    end = json.loads(lines[-1])
    assert end["kind"] == "end"
    end["stop_reason"] = "cancelled"
    (run / "metrics.jsonl").write_text("\n".join(lines[:-1] + [json.dumps(end)]) + "\n")
    dest = tmp_path / "pkg" / "default"
    with pytest.raises(SystemExit, match="cancelled"):
        build_default.export(dest, run)
    assert not dest.exists()
    build_default.export(dest, run, allow_partial=True)
    assert json.loads((dest / "build.json").read_text())["stop_reason"] == "cancelled"


def test_a_failed_export_keeps_the_previous_model(tmp_path, quick, monkeypatch):
    run = tiny_run(tmp_path / "run", tmp_path / "train.txt", max_steps=12)
    dest = tmp_path / "pkg" / "default"
    build_default.export(dest, run)
    before = (dest / store.WEIGHTS).read_bytes()
    monkeypatch.setattr(build_default, "SIZE_LIMIT", 1000)
    with pytest.raises(SystemExit, match="over the"):
        build_default.export(dest, run)
    assert (dest / store.WEIGHTS).read_bytes() == before
    assert not dest.with_name("default.new").exists()


def test_the_build_trains_then_restarts_warm_twice_and_resumes_any_phase(tmp_path, monkeypatch):
    base, full = tmp_path / "base.txt", tmp_path / "full.txt"
    base.write_text(pattern_text(4000))
    full.write_text(pattern_text(4000)[::-1])  # the same characters, other text
    monkeypatch.setattr(build_default, "CORPUS_BASE", base)
    monkeypatch.setattr(build_default, "CORPUS", full)
    monkeypatch.setattr(build_default, "RUN", tmp_path / "run")
    monkeypatch.setattr(build_default, "TRAIN",
                        {**TINY, "max_steps": 12, "seed": 3, "log_interval": 1})
    monkeypatch.setattr(build_default, "EXTEND_TO", 20)
    monkeypatch.setattr(build_default, "FINAL_STEPS", 26)

    assert build_default.train(False, "cpu") == "max_steps"
    events = list(store.read_metrics(tmp_path / "run"))
    ends = [e for e in events if e["kind"] == "end"]
    assert [(e["step"], e["max_steps"]) for e in ends] == [(12, 12), (20, 20), (26, 26)]
    lr = {e["step"]: e["lr"] for e in events if e["kind"] == "step" and "lr" in e}
    assert lr[20] < lr[11] < lr[13]  # the warm restart raises the rate, then it decays again
    assert lr[26] < lr[20] < lr[21]  # and so does the second one
    # The last phase read the full corpus, and the run's records say so.
    args = json.loads((tmp_path / "run" / "train_args.json").read_text())
    assert args["corpus_paths"] == [str(full)] and args["config"]["optimizer"] == "adamw"
    # Resuming a finished build goes on from phase 3 and does nothing more.
    assert build_default.train(True, "cpu") == "max_steps"
    ends = [e for e in store.read_metrics(tmp_path / "run") if e["kind"] == "end"]
    assert ends[-1]["step"] == 26


def test_a_build_stopped_in_phase_2_resumes_phase_2_then_3(tmp_path, monkeypatch):
    base, full = tmp_path / "base.txt", tmp_path / "full.txt"
    base.write_text(pattern_text(4000))
    full.write_text(pattern_text(4000)[::-1])
    monkeypatch.setattr(build_default, "CORPUS_BASE", base)
    monkeypatch.setattr(build_default, "CORPUS", full)
    monkeypatch.setattr(build_default, "RUN", tmp_path / "run")
    monkeypatch.setattr(build_default, "TRAIN", {**TINY, "max_steps": 12, "seed": 3})
    monkeypatch.setattr(build_default, "EXTEND_TO", 20)
    monkeypatch.setattr(build_default, "FINAL_STEPS", 26)
    real_run_phase = build_default.run_phase

    def stop_in_phase_2(corpus, config, resume, corpus_file):
        if config.max_steps == 20:
            config.max_steps = 16  # as if stopped at step 16 of phase 2
            real_run_phase(corpus, config, resume, corpus_file)
            return "cancelled"
        return real_run_phase(corpus, config, resume, corpus_file)

    monkeypatch.setattr(build_default, "run_phase", stop_in_phase_2)
    assert build_default.train(False, "cpu") == "cancelled"
    monkeypatch.setattr(build_default, "run_phase", real_run_phase)
    args = json.loads((tmp_path / "run" / "train_args.json").read_text())
    args["config"]["max_steps"] = 20  # what an interrupted phase 2 leaves
    (tmp_path / "run" / "train_args.json").write_text(json.dumps(args))
    assert build_default.train(True, "cpu") == "max_steps"
    ends = [e for e in store.read_metrics(tmp_path / "run") if e["kind"] == "end"]
    assert [e["step"] for e in ends][-2:] == [20, 26]


def tiny_phase4_setup(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A tiny phase-3 model, and phase 4 pointed at a tiny wide corpus and run folder with a
    short schedule; returns (the start model's folder, the wide corpus file)."""
    start = tiny_run(tmp_path / "phase3", tmp_path / "train.txt", max_steps=12, seed=3)
    wide = tmp_path / "wide.txt"
    wide.write_text(pattern_text(4000)[::-1])  # the same characters, other text
    monkeypatch.setattr(build_default, "CORPUS_WIDE", wide)
    monkeypatch.setattr(build_default, "RUN_WIDE", tmp_path / "wide-run")
    monkeypatch.setattr(build_default, "TRAIN", {**TINY, "max_steps": 12, "seed": 3})
    monkeypatch.setattr(build_default, "PHASE4", {"max_steps": 8, "lr": 1e-3, "min_lr": 1e-4,
                                                  "warmup_steps": 2, "eval_interval": 4,
                                                  "patience": 40, "log_interval": 1})
    return start, wide


def test_phase_4_fine_tunes_a_built_model_on_the_wide_corpus_and_says_so(tmp_path, quick,
                                                                         monkeypatch):
    start, wide = tiny_phase4_setup(tmp_path, monkeypatch)
    assert build_default.train_phase4(start, "cpu", label="some/model") == "max_steps"
    run = tmp_path / "wide-run"
    args = json.loads((run / "train_args.json").read_text())
    assert args["corpus_paths"] == [str(wide)]
    assert args["config"]["lr"] == 1e-3 and args["config"]["max_steps"] == 8
    assert args["config"]["optimizer"] == "adamw" and args["config"]["block_size"] == 16
    assert any("starting from the weights" in n for n in args["notes"])
    events = list(store.read_metrics(run))
    lr = [e["lr"] for e in events if e["kind"] == "step" and "lr" in e]
    assert lr[0] < max(lr) <= 1e-3 and lr[-1] < max(lr)  # its own warmup and decay
    # It started from the given weights, not from scratch: its first loss is the source's.
    first = next(e for e in events if e["kind"] == "step")
    assert first["train_loss"] < 0.9 * next(e for e in store.read_metrics(start)
                                            if e["kind"] == "step")["train_loss"]
    record = json.loads((run / build_default.PHASE4_START).read_text())
    assert record["folder"] == "some/model" and record["is_phase_3_run"] is False
    assert record["weights_sha256"] == build_default.sha256_file(start / store.WEIGHTS)

    build = build_default.export(tmp_path / "pkg" / "default", run)
    assert build["trained_by_this_script"] is True  # phase 4 was, here
    assert build["phase4"]["started_from"] == "some/model"
    assert build["phase4"]["phases_1_to_3_trained_by_this_script"] is False
    assert build["command"] == "python corpora/build_default.py --phase4-from some/model"
    assert build["recipe_matches"] is True and build["steps"] == 8
    assert build["corpus"]["options"] == "--wide-phrasings"
    # A run that is not a phase 4 has no such record.
    assert build_default.export(tmp_path / "pkg2" / "default", start)["phase4"] is None


def test_a_grown_model_computes_what_its_source_does_until_trained(tmp_path):
    run = tiny_run(tmp_path / "run", tmp_path / "train.txt", max_steps=6, n_layer=2)
    source, _, _ = store.read_weights(run / store.WEIGHTS)
    x = torch.randint(0, source.config.vocab_size, (2, 16))
    for n in (3, 5):
        grown = build_default.grow(source, n)
        assert grown.config.n_layer == n and len(grown.transformer.h) == n
        with torch.no_grad():
            assert torch.allclose(grown(x)[0], source(x)[0], atol=1e-6)
        order = build_default.grown_blocks(2, n)
        assert [i for i, added in order if not added] == [0, 1]
        for j, (i, added) in enumerate(order):
            new, old = grown.transformer.h[j], source.transformer.h[i]
            # Each block is a copy of an old one; an added one has its output projections
            # zeroed (so adds nothing), an old one is kept whole.
            assert torch.equal(new.attn.c_attn.weight, old.attn.c_attn.weight)
            assert torch.equal(new.mlp.c_fc.weight, old.mlp.c_fc.weight)
            for proj, old_proj in ((new.attn.c_proj, old.attn.c_proj),
                                   (new.mlp.c_proj, old.mlp.c_proj)):
                assert torch.equal(proj.weight, torch.zeros_like(old_proj.weight) if added
                                   else old_proj.weight)
    # Blocks are added between the old ones, spread out, not all at one end.
    assert build_default.grown_blocks(6, 8) == [
        (0, False), (1, False), (1, True), (2, False), (3, False), (3, True), (4, False),
        (5, False)]
    assert all(len(build_default.grown_blocks(o, n)) == n for o in range(1, 5)
               for n in range(o + 1, 12))
    with pytest.raises(SystemExit, match="already has 2 layers"):
        build_default.grow(source, 2)


def test_phase_4_from_a_grown_model_trains_the_grown_shape_and_records_it(tmp_path, quick,
                                                                          monkeypatch):
    start, _ = tiny_phase4_setup(tmp_path, monkeypatch)
    assert build_default.train_phase4(start, "cpu", label="some/model", layers=3) == "max_steps"
    run = tmp_path / "wide-run"
    assert json.loads((run / "train_args.json").read_text())["config"]["n_layer"] == 3
    trained, _, _ = store.read_weights(run / store.WEIGHTS)
    assert trained.config.n_layer == 3
    # It started from the source's weights (grown): its first loss is the source's last.
    events = list(store.read_metrics(run))
    first = next(e for e in events if e["kind"] == "step")
    source_steps = [e for e in store.read_metrics(start) if e["kind"] == "step"]
    assert first["train_loss"] < 0.9 * source_steps[0]["train_loss"]
    record = json.loads((run / build_default.PHASE4_START).read_text())
    # The record names the model it was grown from, as the command must.
    assert record["grown_to_layers"] == 3
    assert record["weights_sha256"] == build_default.sha256_file(start / store.WEIGHTS)
    build = build_default.export(tmp_path / "pkg" / "default", run)
    assert build["command"] == ("python corpora/build_default.py --phase4-from some/model "
                                "--layers 3")
    assert build["phase4"]["grown_to_layers"] == 3
    assert build["recipe_matches"] is True
    assert store.load_model(str(tmp_path / "pkg" / "default")).model.config.n_layer == 3


def test_layers_is_refused_without_a_phase_4_to_start(capsys):
    for argv in (["--layers", "8"], ["--phase4-from", "x", "--layers", "8", "--resume"]):
        with pytest.raises(SystemExit) as e:
            build_default.main(argv)
        assert e.value.code == 2
        assert "--layers is only used with --phase4-from" in capsys.readouterr().err


def test_a_phase_4_started_from_another_phase_4_records_the_chain(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(build_default, "CORPUS", tmp_path / "absent.jsonl")
    earlier = {"trained_by_this_script": True, "steps": 7000,
               "phase4": {"started_from": "runs/phase3-shipped"}}

    def record(its_build):
        (run / build_default.PHASE4_START).write_text(json.dumps(
            {"folder": "runs/start", "is_phase_3_run": False, "its_build": its_build}))
        return build_default.phase4_record(run)

    chained = record(earlier)
    # The start model's phase 4 was this script's, its phases 1 to 3 were not run here: the
    # command that rebuilds this model has to start from that one (--phase4-from).
    assert chained["phases_1_to_3_trained_by_this_script"] is False
    assert chained["phases_1_to_3_build"]["phase4"] == earlier["phase4"]
    # A start model built whole by this script (phases 1 to 3) still counts as built here.
    whole = record({"trained_by_this_script": True, "steps": 12000})
    assert whole["phases_1_to_3_trained_by_this_script"] is True
    assert "average" not in whole["phases_1_to_3_build"]
    # A start that is a mean of models (--average) keeps its command and every member.
    mean = {"command": "python corpora/build_default.py --average runs/a runs/b",
            "average": {"members": [{"folder": "runs/a", "build": earlier},
                                    {"folder": "runs/b", "build": earlier}]}}
    averaged = record(mean)
    assert averaged["phases_1_to_3_trained_by_this_script"] is False
    assert averaged["phases_1_to_3_build"]["average"] == mean["average"]
    assert averaged["phases_1_to_3_build"]["command"] == mean["command"]


def test_phase_4_never_trains_on_a_wide_corpus_left_by_an_earlier_generator(tmp_path, monkeypatch):
    wide = tmp_path / "default_train_wide.jsonl"
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(build_default, "CORPUS_WIDE", wide)
    monkeypatch.setattr(build_default, "RUN_WIDE", run)
    md = build_default.make_dialogue
    generator = {"writes": "today's corpus"}
    runs = []

    def generate(*a, **kw):
        runs.append(kw)
        return [generator["writes"]], {"pairs": 1}, None, None
    monkeypatch.setattr(md, "generate", generate)
    written = []
    real_write = md.write_lines
    monkeypatch.setattr(md, "write_lines", lambda path, lines: (written.append(path),
                                                                real_write(path, lines)))
    # Missing: written (the wide corpus's options).
    build_default.wide_corpus_current(resume=False)
    assert written == [str(wide)] and wide.read_text() == "today's corpus\n"
    assert runs[-1] == {"name_order_phrasings": True, "wide_phrasings": True}
    # Current: kept, the generator run once to compare.
    build_default.wide_corpus_current(resume=False)
    assert len(written) == 1 and len(runs) == 2
    # Left by an earlier generator: written again for a new run.
    wide.write_text("yesterday's corpus\n")
    build_default.wide_corpus_current(resume=False)
    assert len(written) == 2 and wide.read_text() == "today's corpus\n"
    # A resumed run goes on while its corpus is the one it began on ...
    (run / build_default.PHASE4_START).write_text(json.dumps(
        {"corpus_sha256": build_default.sha256_file(wide)}))
    build_default.wide_corpus_current(resume=True)
    assert len(written) == 2
    # ... and stops with one line naming the file once the generator writes another.
    generator["writes"] = "tomorrow's corpus"
    with pytest.raises(SystemExit) as stop:
        build_default.wide_corpus_current(resume=True)
    assert "default_train_wide.jsonl: make_dialogue.py now writes another corpus" in str(
        stop.value)
    # The digest the records compare with is that of the written file.
    assert build_default.sha256_lines(["tomorrow's corpus"]) == build_default.sha256_file(wide)


def exported(tmp_path: Path, name: str, text: str | None = None, **kw) -> Path:
    """A tiny model trained on text (default: pattern_text) and exported as build_default
    exports one, into tmp_path/name."""
    run = tiny_run(tmp_path / f"{name}-run", tmp_path / f"{name}.txt", text,
                   **{"max_steps": 12, **kw})
    build_default.export(tmp_path / name, run)
    return tmp_path / name


@pytest.fixture
def wide_file(tmp_path, quick, monkeypatch):
    wide = tmp_path / "wide.txt"
    wide.write_text(pattern_text(4000, seed=5))
    monkeypatch.setattr(build_default, "CORPUS_WIDE", wide)
    made = []
    monkeypatch.setattr(build_default, "make_corpus", lambda which, keep_current: made.append(
        (which, keep_current)) or {"wide": "0" * 64})  # not the file's hash
    return made


def test_average_ships_the_mean_of_its_members_weights_and_records_each(tmp_path, wide_file):
    a = exported(tmp_path, "a", seed=3)
    b = exported(tmp_path, "b", seed=4)
    dest = tmp_path / "pkg" / "default"
    build = build_default.average(dest, [a, b], ["runs/a", "runs/b"])
    # Today's wide corpus is made (if stale) before the losses are measured on it.
    assert wide_file == [(("wide",), True)]

    raw = [torch.load(f / store.WEIGHTS, weights_only=True)["state_dict"] for f in (a, b, dest)]
    assert {v.dtype for v in raw[2].values()} == {torch.float16}
    assert raw[2].keys() == raw[0].keys()
    for k in raw[0]:
        mean = (raw[0][k].float() + raw[1][k].float()) / 2
        assert torch.allclose(raw[2][k].float(), mean, atol=2e-3, rtol=2e-3), k
    assert not torch.equal(raw[0]["lm_head.weight"], raw[1]["lm_head.weight"])

    loaded = store.load_model(str(dest))
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
    assert build["command"] == "python corpora/build_default.py --average runs/a runs/b"
    # The weights file says what it was trained on, as the members' do.
    assert loaded.info["corpus_kind"] == store.load_model(str(b)).info["corpus_kind"]
    members = build["average"]["members"]
    assert [m["folder"] for m in members] == ["runs/a", "runs/b"]
    assert [m["weights_sha256"] for m in members] == [
        build_default.sha256_file(f / store.WEIGHTS) for f in (a, b)]
    assert [m["build"] for m in members] == [
        json.loads((f / "build.json").read_text()) for f in (a, b)]
    # Each loss is measured on the same windows: the member's own, and the mean's.
    val = build_default.first_val_windows(build_default.CORPUS_WIDE, loaded.tokenizer, 16)
    assert members[0]["val_loss"] == pytest.approx(
        build_default.windows_loss(store.load_model(str(a)).model, val), abs=1e-5)
    assert build["best_val_loss"] == pytest.approx(build_default.windows_loss(
        store.read_weights(dest / store.WEIGHTS)[0], val), abs=2e-3)
    assert build["float16_val_loss"]["float16"] == pytest.approx(
        build["float16_val_loss"]["float32"], abs=1e-3)
    assert build["corpus"]["sha256"] == build_default.sha256_file(build_default.CORPUS_WIDE)
    assert build["corpus"]["matches_generator"] is False  # the quick fixture's hash
    # The training records are the last member's; meta.json has the mean's loss.
    for name in build_default.MEMBER_RECORDS:
        assert (dest / name).read_bytes() == (b / name).read_bytes(), name
    meta = store.read_meta(dest)
    assert meta["best_val_loss"] == build["best_val_loss"] and "best_step" not in meta
    assert meta["sampling"] == build_default.SAMPLING and meta["name"] == store.BUNDLED_NAME
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in dest.iterdir())
    assert str(tmp_path) not in (dest / "build.json").read_text()
    assert not dest.with_name("default.new").exists()


def test_average_refuses_models_it_cannot_average_and_keeps_the_previous_one(tmp_path,
                                                                            wide_file,
                                                                            monkeypatch):
    a = exported(tmp_path, "a", seed=3)
    dest = tmp_path / "pkg" / "default"
    build_default.export(dest, tmp_path / "a-run")
    before = (dest / store.WEIGHTS).read_bytes()
    narrow = exported(tmp_path, "narrow", seed=4, n_embd=8)
    # As many characters, one of them another: the same shape, another vocabulary.
    other_vocabulary = exported(tmp_path, "vocab", text=pattern_text(4000).replace("a", "#"),
                                seed=4)
    for members, message in (
            ([a], "two model folders or more"),
            ([a, tmp_path / "absent"], "absent: no model to average"),
            ([a, tmp_path / "b" / ".." / "a"], "a: named twice"),
            ([a, dest], "default: the folder the mean replaces"),
            ([a, tmp_path / "a-run"], "a-run: no readable build.json"),
            ([a, narrow], "narrow: its network has another shape than a's"),
            ([a, other_vocabulary], "vocab: its vocabulary differs from a's")):
        with pytest.raises(SystemExit, match=message):
            build_default.average(dest, members, [f.name for f in members])
        assert (dest / store.WEIGHTS).read_bytes() == before
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    with pytest.raises(SystemExit, match="copy: the same weights as a"):
        build_default.average(dest, [a, copy], ["a", "copy"])
    (copy / store.WEIGHTS).write_bytes(b"not a model")
    with pytest.raises(SystemExit, match="copy.*not a readable model file"):
        build_default.average(dest, [a, copy], ["a", "copy"])
    assert (dest / store.WEIGHTS).read_bytes() == before
    assert wide_file == []  # nothing was measured for a refused average
    # A failure after the mean is written (here: over the size limit) keeps the previous model.
    monkeypatch.setattr(build_default, "SIZE_LIMIT", 1000)
    with pytest.raises(SystemExit, match="over the 0 MB limit; nothing was replaced"):
        build_default.average(dest, [a, exported(tmp_path, "b", seed=5)], ["a", "b"])
    assert (dest / store.WEIGHTS).read_bytes() == before
    assert not dest.with_name("default.new").exists()


def test_the_command_line_averages_into_the_package_folder_and_takes_nothing_else(
        tmp_path, wide_file, monkeypatch, capsys):
    a = exported(tmp_path, "a", seed=3)
    b = exported(tmp_path, "b", seed=4)
    dest = tmp_path / "pkg" / "default"
    monkeypatch.setattr(store, "bundled_dir", lambda: dest)
    assert build_default.main(["--average", str(a), str(b)]) == 0
    build = json.loads((dest / "build.json").read_text())
    assert build["command"] == ("python corpora/build_default.py --average "
                                "<outside the checkout>/a <outside the checkout>/b")
    assert "the mean of 2 models" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        build_default.main(["--average", str(a), str(b), "--resume"])
    assert e.value.code == 2 and "used alone" in capsys.readouterr().err
