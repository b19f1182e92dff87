"""Pinned downloads that resume (charchat.download), from a server on 127.0.0.1 that serves
byte ranges, can drop the connection midway, or can ignore ranges."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from charchat import download
from charchat.download import DownloadError

BODY = bytes(range(256)) * 40  # 10,240 bytes
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server():
    state = {"cut_after": None, "ranges": [], "honour_range": True, "body": BODY}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            body = state["body"]
            start = 0
            rng = self.headers.get("Range")
            state["ranges"].append(rng)
            if rng and state["honour_range"]:
                start = int(rng.split("=")[1].rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            data = body[start:]
            if state["cut_after"] is not None:
                data = data[: state["cut_after"]]
                state["cut_after"] = None  # once
                self.wfile.write(data)
                self.wfile.flush()
                self.connection.shutdown(2)  # the connection drops
                return
            self.wfile.write(data)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/model.safetensors", state
    httpd.shutdown()
    httpd.server_close()


def test_a_dropped_download_resumes_where_it_stopped(server, tmp_path):
    url, state = server
    dest = tmp_path / "m" / "model.safetensors"
    state["cut_after"] = 3000
    with pytest.raises(DownloadError, match="run the same command again") as e:
        download.fetch(url, dest, len(BODY), SHA, "gpt2", resume=True)
    assert "\n" not in str(e.value) and not dest.exists()
    part = dest.parent / ".model.safetensors.part"
    assert part.read_bytes() == BODY[:3000]
    seen = []
    download.fetch(url, dest, len(BODY), SHA, "gpt2", resume=True,
                   progress=lambda d, t: seen.append(d))
    assert dest.read_bytes() == BODY and not part.exists()
    assert state["ranges"][-1] == "bytes=3000-" and seen[0] > 3000 and seen[-1] == len(BODY)


def test_a_server_that_ignores_the_range_sends_it_all_again(server, tmp_path):
    url, state = server
    dest = tmp_path / "model.safetensors"
    (tmp_path / ".model.safetensors.part").write_bytes(BODY[:5000])
    state["honour_range"] = False
    download.fetch(url, dest, len(BODY), SHA, "gpt2", resume=True)
    assert dest.read_bytes() == BODY


def test_a_wrong_part_is_not_kept(server, tmp_path):
    """A part whose bytes are not the file's (another file, a damaged disk) fails the hash and
    is removed, so the next try starts clean."""
    url, state = server
    dest = tmp_path / "model.safetensors"
    part = tmp_path / ".model.safetensors.part"
    part.write_bytes(b"x" * 5000)
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download.fetch(url, dest, len(BODY), SHA, "gpt2", resume=True)
    assert not part.exists() and not dest.exists()
    download.fetch(url, dest, len(BODY), SHA, "gpt2", resume=True)
    assert dest.read_bytes() == BODY


def test_without_resume_a_dropped_download_leaves_nothing(server, tmp_path):
    url, state = server
    dest = tmp_path / "corpus.txt"
    state["cut_after"] = 3000
    with pytest.raises(DownloadError):
        download.fetch(url, dest, len(BODY), SHA, "corpus")
    assert list(tmp_path.iterdir()) == []
