"""Fetching and unpacking the MovieLens archive (plain Python, no Spark)."""

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from movierec_dagster.resources.movielens_source import DEFAULT_SOURCE

# GroupLens publishes an MD5 beside each archive (<url>.md5); this is ml-latest-small's.
PUBLISHED_MD5 = {DEFAULT_SOURCE: "bd8ff21f704c18b59b4a8765b038ac0e"}
REQUIRED_FILES = ("movies.csv", "ratings.csv", "tags.csv", "links.csv")
DOWNLOAD_TIMEOUT_SECONDS = 60


class MovieLensSourceError(Exception):
    """The MovieLens source cannot be used; the message says what to do."""


@dataclass(frozen=True)
class UnpackedArchive:
    folder: Path
    source: str
    sha256: str | None
    md5: str | None
    files: dict[str, int]  # file name -> size in bytes


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _published_md5(url: str) -> str | None:
    if url in PUBLISHED_MD5:
        return PUBLISHED_MD5[url]
    try:
        with urllib.request.urlopen(url + ".md5", timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            return response.read().decode().split()[0].strip().lower()
    except (urllib.error.URLError, OSError, IndexError):
        return None


def download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            with target.open("wb") as handle:
                shutil.copyfileobj(response, handle)
    except (urllib.error.URLError, OSError) as error:
        raise MovieLensSourceError(
            f"Could not download the MovieLens archive from {url} ({error}). "
            "Set MOVIELENS_SOURCE to a reachable URL, a local .zip, or a folder "
            "holding movies.csv, ratings.csv, tags.csv and links.csv."
        ) from error
    expected = _published_md5(url)
    if expected is not None and _digest(target, "md5") != expected:
        raise MovieLensSourceError(
            f"The archive downloaded from {url} does not match its published MD5 "
            f"{expected}: the download is corrupt or the file changed. Try again, or "
            "set MOVIELENS_SOURCE to a copy you trust."
        )


def _extract_zip(archive: Path, destination: Path) -> None:
    """Extract the CSVs of `archive` flat into `destination` (MovieLens zips hold one folder)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            broken = bundle.testzip()
            if broken is not None:
                raise MovieLensSourceError(
                    f"{archive}: the member {broken} is corrupt (CRC mismatch). "
                    "Download the archive again."
                )
            members = {Path(info.filename).name: info for info in bundle.infolist() if not info.is_dir()}
            missing = [name for name in REQUIRED_FILES if name not in members]
            if missing:
                raise MovieLensSourceError(
                    f"{archive} is not a MovieLens archive: it has no {', '.join(missing)}. "
                    "Point MOVIELENS_SOURCE at an ml-latest or ml-latest-small zip."
                )
            for name in REQUIRED_FILES:
                with bundle.open(members[name]) as source, (destination / name).open("wb") as target:
                    shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as error:
        raise MovieLensSourceError(
            f"{archive} is not a readable zip archive ({error}). Download it again, or "
            "point MOVIELENS_SOURCE at a folder holding the CSVs."
        ) from error


def _copy_folder(folder: Path, destination: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise MovieLensSourceError(
            f"The folder {folder} has no {', '.join(missing)}: MOVIELENS_SOURCE must be a "
            "folder holding movies.csv, ratings.csv, tags.csv and links.csv."
        )
    for name in REQUIRED_FILES:
        shutil.copyfile(folder / name, destination / name)


def unpack(source: str, destination: Path) -> UnpackedArchive:
    """Fetch `source` (URL, .zip or folder) and leave its four CSVs in `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    sha256 = md5 = None
    if _is_url(source):
        with tempfile.TemporaryDirectory() as download_dir:
            archive = Path(download_dir) / "movielens.zip"
            download(source, archive)
            sha256, md5 = _digest(archive, "sha256"), _digest(archive, "md5")
            _extract_zip(archive, destination)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise MovieLensSourceError(
                f"MOVIELENS_SOURCE={source} does not exist. Set it to the GroupLens URL "
                f"({DEFAULT_SOURCE}), a local .zip, or a folder holding the CSVs."
            )
        if path.is_dir():
            _copy_folder(path, destination)
        else:
            sha256, md5 = _digest(path, "sha256"), _digest(path, "md5")
            _extract_zip(path, destination)
    files = {name: (destination / name).stat().st_size for name in REQUIRED_FILES}
    return UnpackedArchive(folder=destination, source=source, sha256=sha256, md5=md5, files=files)
