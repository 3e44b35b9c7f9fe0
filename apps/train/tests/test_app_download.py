"""The downloader against a real HTTP server on 127.0.0.1 (no outside network): full transfers,
a transfer cut mid-way that resumes with a Range request, a server that ignores Range, a
`.part` left by an earlier run, and size/digest checks."""

import gzip
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from train_app import download
from train_app.download import RemoteFile, fetch
from train_app.errors import UserError

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes: several read blocks


class Server:
    """A tiny file server. `cut_next` truncates the next response body after that many bytes
    (the connection then closes, as a dropped transfer does); `honour_range` can be turned off."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.cut_next: int | None = None
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if range_header and server.honour_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                if server.cut_next is not None:
                    chunk, server.cut_next = chunk[: server.cut_next], None
                    self.close_connection = True
                self.wfile.write(chunk)
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server({"/data.txt": PAYLOAD})
    yield s
    s.close()


def _remote(server, **kw):
    return RemoteFile(f"{server.url}/data.txt", "data.txt", **kw)


def test_full_download_is_checked_and_its_digest_recorded(server, tmp_path):
    got = fetch(_remote(server, size=len(PAYLOAD)), tmp_path / "data.txt", progress=False)
    assert got.read_bytes() == PAYLOAD
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert (tmp_path / "data.txt.sha256").read_text().strip() == digest
    assert not (tmp_path / "data.txt.part").exists()
    download.verify_cached(got)  # matches the recorded digest
    # A second fetch finds the finished file and does not ask the server again.
    fetch(_remote(server), tmp_path / "data.txt", progress=False)
    assert len(server.requests) == 1


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    server.cut_next = 300_000
    got = fetch(_remote(server), tmp_path / "data.txt", progress=False, retry_wait=0)
    assert got.read_bytes() == PAYLOAD
    assert server.requests == [("/data.txt", None), ("/data.txt", "bytes=300000-")]


def test_part_file_from_an_earlier_run_is_resumed(server, tmp_path):
    server.cut_next = 123_456
    with pytest.raises(UserError, match="next run resumes"):
        fetch(_remote(server), tmp_path / "data.txt", retries=0, progress=False)
    assert (tmp_path / "data.txt.part").stat().st_size == 123_456
    got = fetch(_remote(server), tmp_path / "data.txt", progress=False)
    assert got.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/data.txt", "bytes=123456-")


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "data.txt.part").write_bytes(PAYLOAD[:1000])
    server.honour_range = False
    got = fetch(_remote(server), tmp_path / "data.txt", progress=False)
    assert got.read_bytes() == PAYLOAD


def test_wrong_size_or_digest_is_refused_and_nothing_is_kept(server, tmp_path):
    with pytest.raises(UserError, match="expected 5"):
        fetch(_remote(server, size=5), tmp_path / "a.txt", progress=False)
    with pytest.raises(UserError, match="SHA-256"):
        fetch(_remote(server, sha256="0" * 64), tmp_path / "b.txt", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_file_is_a_clear_error(server, tmp_path):
    remote = RemoteFile(f"{server.url}/nope.txt", "nope.txt")
    with pytest.raises(UserError, match="HTTP 404"):
        fetch(remote, tmp_path / "nope.txt", progress=False)


def test_damaged_cache_is_detected(server, tmp_path):
    got = fetch(_remote(server), tmp_path / "data.txt", progress=False)
    got.write_bytes(b"not the payload")
    with pytest.raises(UserError, match="damaged"):
        download.verify_cached(got)


def test_fetch_dataset_downloads_and_unzips(tmp_path, monkeypatch):
    text = b"Once upon a time.<|endoftext|>The end.<|endoftext|>"
    s = Server({"/train.txt.gz": gzip.compress(text), "/valid.txt": text})
    try:
        monkeypatch.setitem(
            download.DATASETS,
            "tiny",
            {
                "train": RemoteFile(f"{s.url}/train.txt.gz", "train.txt", gzipped=True),
                "valid": RemoteFile(f"{s.url}/valid.txt", "valid.txt"),
            },
        )
        paths = download.fetch_dataset("tiny", tmp_path, progress=False)
        assert paths["train"].read_bytes() == text
        assert paths["valid"].read_bytes() == text
        assert paths["train"].parent == tmp_path / "tiny"
        # Cached: a second call does not hit the server.
        n = len(s.requests)
        download.fetch_dataset("tiny", tmp_path, progress=False)
        assert len(s.requests) == n
    finally:
        s.close()
    with pytest.raises(UserError, match="unknown dataset"):
        download.fetch_dataset("tinystorie", tmp_path)


def test_tokenize_with_dataset_downloads_into_the_cache_then_reuses_it(tmp_path, monkeypatch):
    """`--dataset NAME` end to end, offline: the dataset's URLs point at the local server."""
    import io

    from train_app import cli

    story = "Once upon a time, a cat sat on a warm mat and purred at the sun. "
    train_text = "".join(f"{story * 3}Story {i}.<|endoftext|>" for i in range(300)).encode()
    valid_text = "".join(f"{story * 2}Tale {i}.<|endoftext|>" for i in range(60)).encode()
    s = Server({"/train.txt.gz": gzip.compress(train_text), "/valid.txt": valid_text})
    try:
        monkeypatch.setitem(
            download.DATASETS,
            "tinystories",
            {
                "train": RemoteFile(f"{s.url}/train.txt.gz", "train.txt", gzipped=True),
                "valid": RemoteFile(f"{s.url}/valid.txt", "valid.txt"),
            },
        )
        monkeypatch.setenv("LM_CACHE_DIR", str(tmp_path / "cache"))
        argv = ["tokenize", "--dataset", "tinystories", "--tokenizer.vocab_size", "300"]
        argv += ["--model.context_length", "16", "--run", str(tmp_path / "run")]
        out = io.StringIO()
        assert cli.main(argv, out=out) == 0, out.getvalue()
        assert "tinystories (CS336 files in" in out.getvalue()
        assert (tmp_path / "cache" / "tinystories" / "train.txt").read_bytes() == train_text
        meta = (tmp_path / "run" / "data" / "meta.json").read_text()
        assert '"train_docs": 300' in meta
        # A second run directory finds the cached files: no new request.
        n = len(s.requests)
        argv[-1] = str(tmp_path / "run2")
        assert cli.main(argv, out=io.StringIO()) == 0
        assert len(s.requests) == n
    finally:
        s.close()
