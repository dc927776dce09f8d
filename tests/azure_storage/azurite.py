"""Azurite, the Azure Storage emulator, serving Blob on a loopback port for the test session (no dfs endpoint).

`make azurite` installs it into `.azurite/` (git ignores it); an `azurite-blob` on PATH does too.
"""

import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import fsspec

from movierec_dagster.tables import adls_storage_options, join

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BINARY = ROOT / ".azurite" / "node_modules" / ".bin" / "azurite-blob"
# The Node.js `make azurite` installs beside it (npm's node-linux-<arch> package): Azurite needs a newer one than Debian's.
LOCAL_NODE = sorted((ROOT / ".azurite" / "node_modules").glob("node-linux-*/bin"))
INSTALL = "make azurite (npm installs the pinned Azurite and its Node.js into .azurite/; first npm: apt-get install nodejs npm)"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key: public, and accepted by Azurite alone.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "lake"
START_SECONDS = 30
_LISTENING = re.compile(r"Blob service successfully listens on http://127\.0\.0\.1:(\d+)")


def find_binary() -> Path | None:
    """Azurite's Blob server: the project's `.azurite/` install, else one on PATH."""
    if LOCAL_BINARY.exists():
        return LOCAL_BINARY
    on_path = shutil.which("azurite-blob")
    return Path(on_path) if on_path else None


def missing() -> str | None:
    """Why Azurite cannot start here, naming the install; None when it can."""
    if shutil.which("node") is None:
        return f"Azurite needs Node.js, and there is no 'node' on PATH: {INSTALL}"
    if find_binary() is None:
        return f"Azurite is not installed: {INSTALL}"
    return None


@dataclass
class Azurite:
    """A running Azurite Blob server, and the container the tests' lakes live in (as infra/azure makes the lake's)."""

    process: subprocess.Popen
    port: int

    @property
    def connection_string(self) -> str:
        """What AZURE_STORAGE_CONNECTION_STRING holds for it: the account key and the Blob endpoint on loopback."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    def new_lake_uri(self) -> str:
        """A fresh lake, named as on ADLS Gen2: `abfss://<container>@<account>.dfs.core.windows.net/<prefix>`."""
        return f"abfss://{CONTAINER}@{ACCOUNT}.dfs.core.windows.net/lake-{uuid.uuid4().hex[:12]}"

    @classmethod
    def start(cls, binary: Path, workspace: Path) -> "Azurite":
        """Azurite serving Blob on a port of its choosing on loopback, its data and log in `workspace`, with the container."""
        log = workspace / "azurite.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(binary), "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", str(workspace),
                    "--skipApiVersionCheck", "--silent", "--disableTelemetry",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # azurite-blob starts with `#!/usr/bin/env node`: the Node.js installed with it comes first.
                env={**os.environ, "PATH": os.pathsep.join([*map(str, LOCAL_NODE), os.environ.get("PATH", "")])},
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            if listening := _LISTENING.search(log.read_text(errors="replace")):
                azurite = cls(process, int(listening[1]))
                try:
                    fsspec.filesystem("abfs", **adls_storage_options(azurite.connection_string)).mkdir(CONTAINER)
                except Exception:
                    azurite.stop()
                    raise
                return azurite
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise RuntimeError(f"Azurite ({binary}) did not start within {START_SECONDS} s; its output:\n{log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def upload(folder: Path, fs: fsspec.AbstractFileSystem, root: str) -> None:
    """Copy a local lake `folder` (or one area of it) to `root` of `fs`, as it would lie on ADLS."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fs.pipe_file(join(root, path.relative_to(folder).as_posix()), path.read_bytes())
