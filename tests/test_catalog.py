"""Corpus downloads: pinned SHA-256, mismatches refused, nothing half-written. The file is
served from a local HTTP server on 127.0.0.1."""

import hashlib
import http.server
import threading
import time

import pytest

from charchat import catalog
from charchat.cli import main

BODY = b"To be, or not to be, that is the question.\n" * 50


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "good.txt").write_bytes(BODY)
    (root / "bad.txt").write_bytes(BODY.replace(b"be", b"bee"))
    (root / "short.txt").write_bytes(BODY[:100])  # as a dropped connection leaves it

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def entry(monkeypatch):
    d = catalog.Download("sample", "http://127.0.0.1:9/none", hashlib.sha256(BODY).hexdigest(),
                         len(BODY), "sample.txt", "a test text")
    monkeypatch.setattr(catalog, "DOWNLOADS", {"sample": d})
    return d


def test_download_is_verified_and_kept(server, entry):
    path = catalog.fetch("sample", url=f"{server}/good.txt")
    assert path == catalog.corpora_dir() / "sample.txt"
    assert path.read_bytes() == BODY
    # A verified copy is reused, even when the server is gone.
    assert catalog.fetch("sample", url="http://127.0.0.1:9/gone") == path


def test_mismatch_is_refused_and_nothing_is_left(server, entry):
    with pytest.raises(catalog.CatalogError, match="SHA-256 mismatch") as e:
        catalog.fetch("sample", url=f"{server}/bad.txt")
    assert "\n" not in str(e.value)
    d = catalog.corpora_dir()
    assert not (d / "sample.txt").exists()
    assert list(d.iterdir()) == []  # no partial file


def test_unreachable_and_unknown(server, entry):
    with pytest.raises(catalog.CatalogError, match="download failed"):
        catalog.fetch("sample", url=f"{server}/missing.txt")
    with pytest.raises(catalog.CatalogError, match="unknown corpus 'nope'"):
        catalog.fetch("nope")


def test_cli_list_and_get(server, entry, capsys):
    assert main(["corpus", "list"]) == 0
    out = capsys.readouterr().out
    assert "sample" in out and "not downloaded" in out
    assert main(["corpus", "get", "sample", "--url", f"{server}/good.txt"]) == 0
    assert str(catalog.corpora_dir() / "sample.txt") in capsys.readouterr().out
    assert main(["corpus", "get", "sample", "--url", f"{server}/bad.txt"]) == 0  # already verified
    (catalog.corpora_dir() / "sample.txt").unlink()
    assert main(["corpus", "get", "sample", "--url", f"{server}/bad.txt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("charchat: error:") and "mismatch" in err


def test_pinned_tinyshakespeare_entry():
    d = catalog.DOWNLOADS["tinyshakespeare"]
    assert d.url.startswith("https://") and len(d.sha256) == 64 and d.size == 1_115_394


def test_a_cut_short_download_says_so(server, entry):
    with pytest.raises(catalog.CatalogError) as e:
        catalog.fetch("sample", url=f"{server}/short.txt")
    assert f"incomplete download (100 of {len(BODY):,} bytes" in str(e.value)
    assert list(catalog.corpora_dir().iterdir()) == []


def test_a_download_is_an_ordinary_file_and_clears_killed_ones(server, entry):
    import os

    d = catalog.corpora_dir()
    d.mkdir(parents=True)
    killed = d / ".sample.txt.abc123.part"
    killed.write_bytes(b"left by a killed download")
    os.utime(killed, (time.time() - 7200, time.time() - 7200))
    (d / ".sample.txt.def456.part").write_bytes(b"another download, still running")
    old = os.umask(0o022)
    try:
        path = catalog.fetch("sample", url=f"{server}/good.txt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in d.iterdir()) == [".sample.txt.def456.part", "sample.txt"]


def test_list_shows_only_a_verified_copy(server, entry, capsys):
    d = catalog.corpora_dir()
    d.mkdir(parents=True)
    (d / "sample.txt").write_bytes(BODY[:100])
    assert [e.path for e in catalog.list_corpora() if e.name == "sample"] == [None]
    catalog.fetch("sample", url=f"{server}/good.txt")  # replaces the cut-short copy
    assert [e.path for e in catalog.list_corpora() if e.name == "sample"] == [d / "sample.txt"]


def test_get_a_bundled_corpus_says_where_it_is(entry, tmp_path, monkeypatch):
    (tmp_path / "prose.txt").write_text("text\n")
    monkeypatch.setattr(catalog, "bundled_dir", lambda: tmp_path)
    with pytest.raises(catalog.CatalogError, match="'prose' comes with charchat, nothing to "
                                                   "download: .*prose.txt"):
        catalog.fetch("prose")
