"""Fetching the MovieLens archive: URLs with checksums, zips, folders, and every bad source."""

import hashlib
import http.server
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from movierec_dagster.movielens import archive


@pytest.fixture
def http_folder(tmp_path: Path):
    """A loopback HTTP server over a temp folder; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = lambda *args, **kwargs: http.server.SimpleHTTPRequestHandler(*args, directory=str(folder), **kwargs)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_unpacks_a_zip_flat_with_checksums(synthetic_zip, tmp_path):
    unpacked = archive.unpack(str(synthetic_zip), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(archive.REQUIRED_FILES)
    assert unpacked.sha256 == hashlib.sha256(synthetic_zip.read_bytes()).hexdigest()
    assert unpacked.files["ratings.csv"] == (tmp_path / "out" / "ratings.csv").stat().st_size


def test_a_folder_of_csvs_is_a_source(synthetic, tmp_path):
    folder = synthetic.write_folder(tmp_path / "csvs")
    unpacked = archive.unpack(str(folder), tmp_path / "out")
    assert unpacked.sha256 is None
    assert (tmp_path / "out" / "movies.csv").read_text() == (folder / "movies.csv").read_text()


def test_download_verifies_the_published_md5(synthetic_zip, http_folder, tmp_path):
    folder, base = http_folder
    (folder / "ml.zip").write_bytes(synthetic_zip.read_bytes())
    (folder / "ml.zip.md5").write_text(hashlib.md5(synthetic_zip.read_bytes()).hexdigest() + "  ml.zip\n")
    unpacked = archive.unpack(f"{base}/ml.zip", tmp_path / "out")
    assert unpacked.md5 == hashlib.md5(synthetic_zip.read_bytes()).hexdigest()

    (folder / "ml.zip.md5").write_text("0" * 32 + "\n")
    with pytest.raises(archive.MovieLensSourceError, match="does not match its published MD5"):
        archive.unpack(f"{base}/ml.zip", tmp_path / "again")


def test_unreachable_url_names_the_variable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(archive.MovieLensSourceError, match="Set MOVIELENS_SOURCE"):
        archive.unpack(f"http://127.0.0.1:{port}/ml-latest-small.zip", Path("/tmp/unused"))


def test_missing_path(tmp_path):
    with pytest.raises(archive.MovieLensSourceError, match="does not exist"):
        archive.unpack(str(tmp_path / "nope.zip"), tmp_path / "out")


def test_corrupt_zip(tmp_path):
    bad = tmp_path / "ml.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(archive.MovieLensSourceError, match=r"ml.zip is not a readable zip archive"):
        archive.unpack(str(bad), tmp_path / "out")


def test_zip_with_a_damaged_member(synthetic_zip, tmp_path):
    damaged = tmp_path / "damaged.zip"
    data = bytearray(synthetic_zip.read_bytes())
    with zipfile.ZipFile(synthetic_zip) as bundle:
        info = bundle.getinfo("ml-synthetic/ratings.csv")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 10] ^= 0xFF  # flip a byte inside the stored data
    damaged.write_bytes(bytes(data))
    with pytest.raises(archive.MovieLensSourceError, match="ratings.csv"):
        archive.unpack(str(damaged), tmp_path / "out")


def test_zip_without_ratings(synthetic, tmp_path):
    incomplete = synthetic.write_zip(tmp_path / "incomplete.zip", omit=("ratings.csv",))
    with pytest.raises(archive.MovieLensSourceError, match="has no ratings.csv"):
        archive.unpack(str(incomplete), tmp_path / "out")


def test_folder_without_links(synthetic, tmp_path):
    folder = synthetic.write_folder(tmp_path / "csvs")
    (folder / "links.csv").unlink()
    with pytest.raises(archive.MovieLensSourceError, match="has no links.csv"):
        archive.unpack(str(folder), tmp_path / "out")
