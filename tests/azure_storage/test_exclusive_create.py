"""A commit's exclusive create on Azure Storage: a log file that exists refuses the next writer, whether the service says so with 409 (Azurite) or 412."""

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fsspec
import pytest

from movierec_dagster.tables import adls_storage_options, join, put_if_absent
from tests.azure_storage.azurite import ACCOUNT, Azurite

CONDITION_NOT_MET = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ConditionNotMet</Code>'
    b"<Message>The condition specified using HTTP conditional header(s) is not met.</Message></Error>"
)


def _answering_412(azurite_port: int) -> type[BaseHTTPRequestHandler]:
    class Answering412(BaseHTTPRequestHandler):
        """Azurite, except that it refuses a blob that exists with 412 ConditionNotMet, as the Azure SDK expects."""

        protocol_version = "HTTP/1.1"

        def forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            upstream = http.client.HTTPConnection("127.0.0.1", azurite_port, timeout=30)
            upstream.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
            answer = upstream.getresponse()
            status, data = answer.status, answer.read()
            headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in ("transfer-encoding", "connection")]
            if status == 409 and answer.getheader("x-ms-error-code") == "BlobAlreadyExists":
                status, data = 412, CONDITION_NOT_MET
                headers = [(k, v) for k, v in headers if k.lower() not in ("x-ms-error-code", "content-length")]
                headers += [("x-ms-error-code", "ConditionNotMet"), ("Content-Length", str(len(data)))]
            upstream.close()
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_DELETE = do_POST = forward

        def log_message(self, *args) -> None:
            pass

    return Answering412


@pytest.fixture
def refusing_with_412(azurite: Azurite) -> Iterator[str]:
    """A connection string to Azurite through a loopback proxy that answers 412 where Azurite answers 409."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _answering_412(azurite.port))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield azurite.connection_string.replace(f"127.0.0.1:{azurite.port}/", f"127.0.0.1:{server.server_address[1]}/")
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("refusal", [409, 412])
def test_a_log_file_that_exists_refuses_the_next_writer(request, azurite, refusal):
    connection_string = azurite.connection_string if refusal == 409 else request.getfixturevalue("refusing_with_412")
    assert f"/{ACCOUNT};" in connection_string
    fs, root = fsspec.core.url_to_fs(azurite.new_lake_uri(), **adls_storage_options(connection_string))
    log_file = join(root, "tables", "ratings", "_log", f"{0:020d}.json")
    assert put_if_absent(fs, log_file, b'{"version": 0}')
    assert not put_if_absent(fs, log_file, b'{"version": 0, "other": "writer"}')
    assert fs.cat_file(log_file) == b'{"version": 0}'
