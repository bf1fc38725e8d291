"""A tiny fake Hugging Face Hub on 127.0.0.1, so tests run the real huggingface_hub upload code over HTTP.

It answers just what `HfApi.create_repo` and `HfApi.upload_folder` call in huggingface_hub 2.4.0: repo
creation, README metadata validation, `preupload` (every file "regular", so its contents come inline in
the commit and no LFS/Xet storage is needed), the NDJSON commit and repo info (asked for when a push
changes nothing). Tokens are never stored: a request keeps only a fingerprint of its Authorization header."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

NAMESPACE = "tester"  # the user every token belongs to
REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [  # (method, endpoint name, path)
    ("POST", "create", re.compile(r"/api/repos/create")),
    ("POST", "validate", re.compile(r"/api/validate-yaml")),
    ("POST", "preupload", re.compile(rf"/api/models/{REPO}/preupload/[^/]+")),
    ("POST", "commit", re.compile(rf"/api/models/{REPO}/commit/[^/]+")),
    ("GET", "info", re.compile(rf"/api/models/{REPO}(/revision/[^/]+)?")),
]


def fingerprint(authorization: str) -> str:
    """A short digest of an Authorization header value: enough to compare, useless to leak."""
    return hashlib.sha256(authorization.encode()).hexdigest()[:16]


def git_blob_oid(content: bytes) -> str:
    """What the client computes for a regular file (git's blob sha1) to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    endpoint: str | None  # the ROUTES name; None for a request the fake does not know
    headers: dict[str, str]  # lower-case names, Authorization left out
    auth: str | None  # fingerprint of the Authorization header, None when absent
    body: bytes


class FakeHub:
    """Repositories in memory: `files[repo_id][path]` holds the bytes received in commits."""

    def __init__(self):
        self.requests: list[Request] = []
        self.files: dict[str, dict[str, bytes]] = {}
        self.visibility: dict[str, str | None] = {}
        self.heads: dict[str, str] = {}
        self.delay = 0.0  # seconds every answer waits
        self._failure = (0, 500, None)  # (how many more, status, endpoint or None for any)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, n: int, status: int = 500, endpoint: str | None = None) -> None:
        """Answer the next n requests (to `endpoint` only, when given) with `status`. The error message
        echoes the request's Authorization header, as a careless server might, to test redaction."""
        self._failure = (n, status, endpoint)

    def count(self, endpoint: str) -> int:
        return sum(r.endpoint == endpoint for r in self.requests)

    def answer(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, dict]:
        """(status, JSON payload, extra headers) for one request."""
        endpoint, match = next(((name, m) for verb, name, pattern in ROUTES
                                if verb == method and (m := pattern.fullmatch(path))), (None, None))
        authorization = headers.get("Authorization")
        time.sleep(self.delay)
        with self._lock:
            self.requests.append(Request(method, path, endpoint,
                                         {k.lower(): v for k, v in headers.items() if k.lower() != "authorization"},
                                         fingerprint(authorization) if authorization else None, body))
            if endpoint is None:
                return 404, {"error": f"fake hub: no route for {method} {path}"}, {}
            if self._take_failure(endpoint):
                return self._failure[1], {"error": f"fake failure; request authorization: {authorization}"}, {}
            if authorization is None and endpoint in ("create", "commit"):
                return 401, {"error": "Invalid credentials in Authorization header"}, {}
            repo = match.groupdict().get("repo")
            if repo is not None and repo not in self.files:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            return (*getattr(self, f"_{endpoint}")(body, repo), {})

    def _take_failure(self, endpoint: str) -> bool:
        left, status, only = self._failure
        if left <= 0 or only not in (None, endpoint):
            return False
        self._failure = (left - 1, status, only)
        return True

    def _create(self, body: bytes, _repo) -> tuple[int, dict]:
        payload = json.loads(body)
        repo = f"{payload.get('organization') or NAMESPACE}/{payload['name']}"
        url = {"url": f"{self.url}/{repo}"}  # the real Hub sends it with the 409 too; the client reads it
        if repo in self.files:
            return 409, {"error": "You already created this model repo", **url}
        self.files[repo] = {}
        self.visibility[repo] = payload.get("visibility")
        return 200, url

    def _validate(self, _body, _repo) -> tuple[int, dict]:
        return 200, {"errors": [], "warnings": []}

    def _preupload(self, body: bytes, repo: str) -> tuple[int, dict]:
        stored = self.files[repo]
        return 200, {"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_oid(stored[f["path"]]) if f["path"] in stored else None}
            for f in json.loads(body)["files"]]}

    def _commit(self, body: bytes, repo: str) -> tuple[int, dict]:
        header, *operations = [json.loads(line) for line in body.splitlines() if line.strip()]
        assert header["key"] == "header", header
        for op in operations:
            if op["key"] != "file":
                return 400, {"error": f"fake hub: only inline files are supported, got {op['key']}"}
        for op in operations:
            self.files[repo][op["value"]["path"]] = base64.b64decode(op["value"]["content"])
        self.heads[repo] = hashlib.sha1(body).hexdigest()
        return 200, {"commitUrl": f"{self.url}/{repo}/commit/{self.heads[repo]}", "commitOid": self.heads[repo]}

    def _info(self, _body, repo: str) -> tuple[int, dict]:
        return 200, {"id": repo, "sha": self.heads.get(repo, "0" * 40),
                     "private": self.visibility[repo] == "private"}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def _serve(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload, extra_headers = self.server.hub.answer(method, urlsplit(self.path).path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        """Quiet: pytest output should not fill with access logs."""


@pytest.fixture
def hub_online(monkeypatch):
    """huggingface_hub as if online, for one test. It read HF_HUB_OFFLINE (set by conftest) into
    `constants` at import, and every request checks `constants.is_offline_mode()`. Telemetry goes off
    because building the first request's headers would otherwise fetch an agent registry from
    huggingface.co (not the endpoint given). And the library's own retries of preupload and commit
    (5, with 1-8 s sleeps) are turned off so that tests count the uploader's retries and stay fast."""
    from huggingface_hub import _commit_api, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(_commit_api, "http_backoff", functools.partial(_commit_api.http_backoff, max_retries=0))


@pytest.fixture
def fake_hub(hub_online):
    hub = FakeHub()
    yield hub
    hub.close()
