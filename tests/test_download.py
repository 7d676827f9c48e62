"""`bench data download`: resumable, checksummed downloads, tested against a loopback
HTTP server (127.0.0.1 only) that can cut transfers, corrupt bytes or ignore Range."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from merbench.download import Download, download, download_dataset, extract, extract_once, fetch, mirror_url
from merbench.errors import MerbenchError


class Server:
    """Serves ``files`` (name -> bytes); behaviour switches are plain attributes."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None  # close the connection after this many body bytes
        self.corrupt = False  # flip one byte of every body
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                outer.requests.append((name, rng))
                if name not in outer.files:
                    self.send_error(404)
                    return
                data = outer.files[name]
                if outer.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None and outer.cut_after < len(body):
                    self.wfile.write(body[:outer.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def range_requests(self, name: str) -> list[str]:
        return [r for n, r in self.requests if n == name and r]


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=5)


CSV = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
       + "".join(f"{i},line number {i} of the fixture,Joey,neutral,neutral,{i // 10},{i % 10}\n" for i in range(120))
       ).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def dl(server, name, **kw) -> Download:
    # Upstream-looking URL; mirror_url maps it onto the loopback server by file name.
    return Download(url=f"https://example.invalid/some/path/{name}", filename=name, **kw)


def test_full_download_verifies_and_renames(server, tmp_path):
    server.files["a.csv"] = CSV
    seen = []
    path = fetch(dl(server, "a.csv", sha256=sha(CSV)), tmp_path, progress=lambda d, t: seen.append((d, t)),
                 url_base=server.base)
    assert path == tmp_path / "a.csv" and path.read_bytes() == CSV
    assert not (tmp_path / "a.csv.part").exists()
    assert seen[-1] == (len(CSV), len(CSV))
    # Already there and verified: no second request.
    n = len(server.requests)
    fetch(dl(server, "a.csv", sha256=sha(CSV)), tmp_path, progress=False, url_base=server.base)
    assert len(server.requests) == n


def test_interrupted_transfer_resumes_with_range(server, tmp_path):
    server.files["a.csv"] = CSV
    server.cut_after = 1000
    d = dl(server, "a.csv", sha256=sha(CSV))
    with pytest.raises(MerbenchError, match="interrupted after 1000 of") as e:
        fetch(d, tmp_path, progress=False, url_base=server.base)
    assert "resumes" in e.value.fix
    part = tmp_path / "a.csv.part"
    assert part.stat().st_size == 1000 and not (tmp_path / "a.csv").exists()
    server.cut_after = None
    path = fetch(d, tmp_path, progress=False, url_base=server.base)
    assert server.range_requests("a.csv") == ["bytes=1000-"]
    assert sha(path.read_bytes()) == sha(CSV) and not part.exists()


def test_part_already_whole_gets_416_and_is_verified(server, tmp_path):
    server.files["a.csv"] = CSV
    (tmp_path / "a.csv.part").write_bytes(CSV)
    path = fetch(dl(server, "a.csv", sha256=sha(CSV)), tmp_path, progress=False, url_base=server.base)
    assert server.range_requests("a.csv") == [f"bytes={len(CSV)}-"]
    assert path.read_bytes() == CSV


def test_corrupted_file_is_rejected_and_not_kept(server, tmp_path):
    server.files["a.csv"] = CSV
    server.corrupt = True
    with pytest.raises(MerbenchError) as e:
        fetch(dl(server, "a.csv", sha256=sha(CSV)), tmp_path, progress=False, url_base=server.base)
    msg = str(e.value)
    assert "a.csv" in msg and sha(CSV) in msg and "checksum mismatch" in msg and "run the same command again" in msg
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "a.csv.part").exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.files["a.csv"] = CSV
    (tmp_path / "a.csv.part").write_bytes(b"garbage that is not the start of the file")
    server.ignore_range = True
    path = fetch(dl(server, "a.csv", sha256=sha(CSV)), tmp_path, progress=False, url_base=server.base)
    assert server.range_requests("a.csv")  # it asked for a range, got a 200, and started over
    assert path.read_bytes() == CSV


def test_no_published_checksum_records_a_sidecar(server, tmp_path):
    server.files["a.csv"] = CSV
    path = fetch(dl(server, "a.csv"), tmp_path, progress=False, url_base=server.base)
    assert (tmp_path / "a.csv.sha256").read_text() == f"{sha(CSV)}  a.csv\n"
    # A local copy damaged later no longer matches its sidecar and is fetched again.
    path.write_bytes(b"damaged")
    fetch(dl(server, "a.csv"), tmp_path, progress=False, url_base=server.base)
    assert path.read_bytes() == CSV


def test_unreachable_host_gives_the_offline_message(tmp_path):
    with socket.socket() as s:  # a loopback port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = Download(url=f"http://127.0.0.1:{port}/x/a.csv", filename="a.csv")
    with pytest.raises(MerbenchError) as e:
        fetch(d, tmp_path, progress=False, timeout=5)
    assert f"cannot reach 127.0.0.1:{port}" in e.value.message and d.url in e.value.message
    assert str(tmp_path) in e.value.fix and "bench data prepare" in e.value.fix
    assert not (tmp_path / "a.csv").exists()


def test_http_error_names_url_and_status(server, tmp_path):
    with pytest.raises(MerbenchError, match="HTTP 404"):
        fetch(dl(server, "missing.csv"), tmp_path, progress=False, url_base=server.base)


def test_tar_with_parent_member_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(make_tar({"ok.txt": b"fine", "../evil": b"owned"}))
    into = tmp_path / "root"
    with pytest.raises(MerbenchError, match=r"'\.\./evil'.*refusing"):
        extract(archive, "tar.gz", into)
    assert not (tmp_path / "evil").exists() and list(into.iterdir()) == []  # nothing half-unpacked, no temp left
    archive.write_bytes(make_tar({"/abs/evil": b"owned"}))
    with pytest.raises(MerbenchError, match="absolute path"):
        extract(archive, "tar.gz", into)


def test_extract_once_is_atomic_and_not_repeated(tmp_path):
    archive = tmp_path / "pack.tar.gz"
    archive.write_bytes(make_tar({"pack/a.txt": b"a", "pack/sub/b.txt": b"b"}))
    into = tmp_path / "root"
    assert extract_once(archive, "tar.gz", into)
    assert (into / "pack" / "sub" / "b.txt").read_bytes() == b"b"
    assert not extract_once(archive, "tar.gz", into)  # marker matches: nothing to do
    assert sorted(p.name for p in into.iterdir()) == [".pack.tar.gz.extracted", "pack"]


def test_meld_downloads_through_a_mirror(server, tmp_path, monkeypatch):
    from merbench.datasets.meld.adapter import MELDDataset

    names = [d.filename for d in MELDDataset.downloads]
    assert names == ["train_sent_emo.csv", "dev_sent_emo.csv", "test_sent_emo.csv", "MELD.Raw.tar.gz"]
    assert all(d.sha256 is None for d in MELDDataset.downloads)  # upstream publishes none
    assert mirror_url(MELDDataset.downloads[0], server.base + "/") == server.base + "/train_sent_emo.csv"
    for s in ("train", "dev", "test"):
        server.files[f"{s}_sent_emo.csv"] = CSV
    server.files["MELD.Raw.tar.gz"] = make_tar({
        "MELD.Raw/README.txt": b"clips",
        "MELD.Raw/train.tar.gz": make_tar({"train_splits/dia0_utt0.mp4": b"\0"}),
        "MELD.Raw/dev.tar.gz": make_tar({"dev_splits_complete/dia0_utt0.mp4": b"\0"}),
        "MELD.Raw/test.tar.gz": make_tar({"output_repeated_splits_test/dia0_utt0.mp4": b"\0"}),
    })
    root = tmp_path / "meld"
    download_dataset("meld", root=root, url_base=server.base, only=["annotations"], progress=False)
    assert sorted(p.name for p in root.glob("*.csv")) == ["dev_sent_emo.csv", "test_sent_emo.csv", "train_sent_emo.csv"]
    assert not (root / "MELD.Raw.tar.gz").exists()
    download_dataset("meld", root=root, url_base=server.base, progress=False)
    assert (root / "MELD.Raw" / "train_splits" / "dia0_utt0.mp4").is_file()
    assert (root / "MELD.Raw" / "output_repeated_splits_test" / "dia0_utt0.mp4").is_file()
    assert (root / "MELD.Raw.tar.gz.sha256").is_file()
    # The archive deleted after unpacking: a re-run neither fetches nor unpacks it again.
    (root / "MELD.Raw.tar.gz").unlink()
    n = len(server.requests)
    download_dataset("meld", root=root, url_base=server.base, progress=False)
    assert len(server.requests) == n
    with pytest.raises(MerbenchError, match="no download group or file 'clips'"):
        download_dataset("meld", root=root, url_base=server.base, only=["clips"], progress=False)


def test_iemocap_answers_with_the_licence_message(tmp_path):
    with pytest.raises(MerbenchError) as e:
        download_dataset("iemocap", root=tmp_path, progress=False)
    assert "iemocap has no public download" in e.value.message and "licence" in e.value.message
    assert "bench data prepare iemocap --root PATH" in e.value.fix and "sail.usc.edu" in e.value.fix


def test_command_end_to_end_through_main(server, tmp_path, capsys):
    # Mounted here the way cli.py will mount it, and removed afterwards.
    from merbench import cli

    for s in ("train", "dev", "test"):
        server.files[f"{s}_sent_emo.csv"] = CSV
    cli.data_app.command("download")(download)
    try:
        root = tmp_path / "meld"
        rc = cli.main(["data", "download", "meld", "--root", str(root), "--mirror", server.base,
                       "--only", "annotations"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert (root / "train_sent_emo.csv").read_bytes() == CSV
        assert "bench data prepare meld --root" in out.out
        rc = cli.main(["data", "download", "iemocap", "--root", str(root)])
        err = capsys.readouterr().err
        assert rc == 2 and "no public download" in err and "Traceback" not in err
    finally:
        cli.data_app.registered_commands.pop()
