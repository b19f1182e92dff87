"""Importing GPT-2 checkpoints (issue 20): a GPT-2 made by Hugging Face's transformers, saved in
each layout charchat reads, imports to a model whose logits are transformers' own."""

from __future__ import annotations

import json

import pytest
import torch

from charchat import bpe, gpt2import, store
from charchat.gpt2import import ImportFailed


@pytest.fixture(scope="module")
def hf_gpt2(tmp_path_factory):
    """A small random GPT-2 in transformers, saved with save_pretrained (safetensors)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=64,
                                  vocab_size=50257)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder, safe_serialization=True)
    return model, folder


@pytest.fixture
def served(hf_gpt2):
    """hf_gpt2's model.safetensors served on 127.0.0.1 (GET and HEAD): (url, bytes, GETs seen)."""
    import http.server
    import threading

    data = (hf_gpt2[1] / "model.safetensors").read_bytes()
    gets = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()

        def do_GET(self):
            gets.append(self.path)
            self.do_HEAD()
            self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/model.safetensors", data, gets
    httpd.shutdown()
    httpd.server_close()


def hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def check_same_logits(hf_model, name):
    loaded = store.load_model(name)
    ids = bpe.gpt2().encode("Hello world, this is GPT-2 speaking.")
    with torch.no_grad():
        ours = loaded.model(torch.tensor([ids]))[0][0]
    assert ours.shape[-1] == 50304
    torch.testing.assert_close(ours[:, :50257], hf_logits(hf_model, ids), atol=2e-5, rtol=1e-4)
    return loaded


def test_save_pretrained_layout_gives_transformers_logits(hf_gpt2, charchat_home):
    model, folder = hf_gpt2
    out = gpt2import.import_file(folder / "model.safetensors", name="tiny-gpt2")
    loaded = check_same_logits(model, "tiny-gpt2")
    assert loaded.tokenizer == bpe.gpt2() and loaded.model.config.n_head == 4  # config.json
    # the rows past GPT-2's vocabulary: the mean of its rows, for the turn tokens and padding
    wte = loaded.model.transformer.wte.weight
    torch.testing.assert_close(wte[50257], wte[:50257].mean(0))
    listed = {m.name: m for m in store.list_models()}["tiny-gpt2"]
    assert listed.tokenizer == "gpt2" and listed.params == loaded.model.num_params()
    assert (out / "tokenizer.json").exists() and (out / "config.json").exists()


def test_hub_layout_and_a_pytorch_bin_import_the_same(hf_gpt2, charchat_home, tmp_path):
    """The hub's model.safetensors has no 'transformer.' prefix and keeps the mask buffers;
    pytorch_model.bin is a pickled state dict, read with weights_only."""
    from safetensors.torch import save_file

    model, folder = hf_gpt2
    sd = {k.removeprefix("transformer."): v.clone() for k, v in model.state_dict().items()
          if k != "lm_head.weight"}
    for i in range(2):
        sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 64, 64))
    hub = tmp_path / "hub"
    hub.mkdir()
    save_file(sd, str(hub / "model.safetensors"))
    (hub / "config.json").write_text(json.dumps({"n_head": 4}))
    gpt2import.import_file(hub / "model.safetensors", name="hub")
    check_same_logits(model, "hub")
    torch.save(model.state_dict(), hub / "pytorch_model.bin")
    gpt2import.import_file(hub / "pytorch_model.bin", name="bin")
    check_same_logits(model, "bin")


def test_heads_come_from_the_known_shapes_without_a_config(tmp_path, charchat_home):
    from safetensors.torch import save_file

    sd = {"wte.weight": torch.zeros(50257, 768), "wpe.weight": torch.zeros(1024, 768),
          "ln_f.weight": torch.ones(768), "h.0.attn.c_attn.weight": torch.zeros(768, 2304)}
    for i in range(1, 12):
        sd[f"h.{i}.ln_1.weight"] = torch.ones(1)
    save_file(sd, str(tmp_path / "model.safetensors"))
    shape = gpt2import.read_shape(tmp_path / "model.safetensors")
    assert (shape["n_layer"], shape["n_head"], shape["n_embd"]) == (12, 12, 768)


def _not_gpt2(path):
    from safetensors.torch import save_file

    save_file({"x.weight": torch.zeros(2, 2)}, str(path))


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"not a safetensors file"), "not a readable safetensors file"),
    (_not_gpt2, "not a GPT-2 checkpoint (no wte.weight)"),
])
def test_a_file_that_is_not_gpt2_is_one_line(tmp_path, charchat_home, make, message):
    path = tmp_path / "model.safetensors"
    make(path)
    with pytest.raises(ImportFailed) as e:
        gpt2import.import_file(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)
    assert not (charchat_home / "models").exists() or not any((charchat_home / "models").iterdir())


def test_an_unknown_shape_without_config_asks_for_it(hf_gpt2, tmp_path, charchat_home):
    import shutil

    _, folder = hf_gpt2
    shutil.copy(folder / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(ImportFailed, match="put the model's config.json"):
        gpt2import.import_file(tmp_path / "model.safetensors")


def test_the_command_line_imports_and_samples(hf_gpt2, charchat_home, capsys):
    from charchat.cli import main

    _, folder = hf_gpt2
    assert main(["import", "--from", str(folder / "model.safetensors"), "--name", "g"]) == 0
    out = capsys.readouterr().out
    assert "imported as g" in out
    assert main(["sample", "--model", "g", "--prompt", "Hello", "--chars", "10", "--seed",
                 "1"]) == 0
    assert capsys.readouterr().out.startswith("Hello")
    # the same name again is refused, in one line, and the first import is untouched
    assert main(["import", "--from", str(folder / "model.safetensors"), "--name", "g"]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    assert store.load_model("g").tokenizer == bpe.gpt2()


def test_the_pin_is_the_one_the_issue_gives():
    p = gpt2import.PINNED["gpt2"]
    assert p.url == ("https://huggingface.co/openai-community/gpt2/resolve/"
                     "607a30d783dfa663caf39e06633721c8d4cfcd7e/model.safetensors")
    assert p.size == 548_105_171
    assert p.sha256 == "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707"


def test_import_gpt2_downloads_the_pinned_file_and_imports_it(hf_gpt2, served, charchat_home,
                                                             capsys, monkeypatch):
    """Served from 127.0.0.1 (the hub cannot be reached here), pinned by its size and hash."""
    import hashlib

    from charchat.cli import main

    model, _ = hf_gpt2
    url, data, _ = served
    monkeypatch.setattr(gpt2import, "PINNED", {"gpt2": gpt2import.Pinned(
        "x/y", "0" * 40, len(data), hashlib.sha256(data).hexdigest(), 4)})
    assert main(["import", "gpt2", "--url", url]) == 0
    check_same_logits(model, "gpt2")
    assert not (charchat_home / "downloads").exists() or not any(
        (charchat_home / "downloads").rglob("*.safetensors"))  # the model file holds it
    # a file that is not the pinned one is refused, and nothing is imported
    monkeypatch.setattr(gpt2import, "PINNED", {"gpt2": gpt2import.Pinned(
        "x/y", "1" * 40, len(data), "0" * 64, 4)})
    capsys.readouterr()
    assert main(["import", "gpt2", "--url", url, "--name", "other"]) == 1
    err = capsys.readouterr().err
    assert "SHA-256 mismatch" in err and err.count("\n") == 1
    assert not (charchat_home / "models" / "other").exists()


def test_import_needs_one_source(capsys):
    from charchat.cli import main

    assert main(["import"]) == 2
    assert main(["import", "gpt2-huge"]) == 1
    assert "unknown model" in capsys.readouterr().err


def test_a_base_gpt2_chats_through_the_plain_text_frame(hf_gpt2, charchat_home, monkeypatch):
    """An imported GPT-2 is a base model: the conversation goes to it as a written script,
    and its reply ends where it starts the next turn's line."""
    from charchat import chat, generation
    from charchat.chat import FRAME_HEADER, ChatSession

    _, folder = hf_gpt2
    gpt2import.import_file(folder / "model.safetensors", name="base")
    loaded = store.load_model("base")
    assert loaded.kind == "prose" and loaded.chat_kind == "framed"
    assert loaded.meta["sampling"]["temperature"] == 0.7  # its own defaults, until changed
    session = ChatSession.from_loaded(loaded)
    tok = loaded.tokenizer
    script = tok.encode(" Hello there!\nUser: and more")
    monkeypatch.setattr(generation, "generate_ids",
                        lambda model, idx, n, *a, **k: iter(torch.tensor([t]) for t in script))
    assert session.reply("hi <|endoftext|>") == "Hello there!"
    assert session.messages[-1].ended == "stop"
    session.messages.append(chat.Message("user", "how are you?"))
    assert tok.decode(session.build_prompt()) == (
        FRAME_HEADER + "User: hi <|endoftext|>\nAssistant: Hello there!\n"
        "User: how are you?\nAssistant:")
    assert tok.eot_id not in session.build_prompt()  # typed, it is text


def test_an_import_the_memory_cannot_hold_is_refused_first(hf_gpt2, charchat_home, monkeypatch):
    _, folder = hf_gpt2
    monkeypatch.setattr(gpt2import, "_available_memory", lambda: 1 << 20)  # 1 MiB free
    read = []
    monkeypatch.setattr(gpt2import, "_read_tensor", lambda *a: read.append(a))
    with pytest.raises(ImportFailed) as e:
        gpt2import.import_file(folder / "model.safetensors", name="big")
    assert "of memory" in str(e.value) and "1.0 MB is available" in str(e.value)
    assert read == [] and not (charchat_home / "models" / "big").exists()


def test_an_unpinned_size_is_imported_only_once_its_hash_is_accepted(hf_gpt2, served,
                                                                    charchat_home, capsys,
                                                                    monkeypatch):
    import hashlib

    from charchat.cli import main

    model, _ = hf_gpt2
    url, data, gets = served
    sha = hashlib.sha256(data).hexdigest()
    monkeypatch.setitem(gpt2import.UNPINNED, "gpt2-medium", ("x/y", 4))
    # no terminal to ask on: refused, the hash shown, the file kept for the next run
    assert main(["import", "gpt2-medium", "--url", url]) == 1
    err = capsys.readouterr().err
    assert sha in err and f"--sha256 {sha}" in err and err.count("\n") == 1
    assert not (charchat_home / "models" / "gpt2-medium").exists()
    # a hash that is not the file's: refused, and the file removed
    assert main(["import", "gpt2-medium", "--url", url, "--sha256", "0" * 64]) == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err
    # downloaded again, accepted by its hash: imported
    assert main(["import", "gpt2-medium", "--url", url, "--sha256", sha]) == 0
    assert len(gets) == 2
    check_same_logits(model, "gpt2-medium")
