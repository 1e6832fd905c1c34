"""Start the BentoML server in its own process group and always stop it again (tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from siyu.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as SIYU_* variables, for a server started in another process."""
    return {
        **os.environ,
        "SIYU_DATA_DIR": str(settings.data_dir),
        "SIYU_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "SIYU_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
        "SIYU_FEAST_PROJECT": settings.feast_project,
        "SIYU_ONLINE_STORE": settings.online_store,
    }


@contextmanager
def running_server(
    settings: Settings,
    log_path: Path,
    ready_timeout: float = 180.0,
    target: str = "serving.service:Siyu",
    extra_env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[str]:
    """`bentoml serve target` (the source tree's service, or a built Bento's tag) until the block ends.

    A Bento runs from a scratch directory, so its own copy of the sources is what gets imported; `cwd`
    runs the service from elsewhere too (an installed package, with the checkout out of the path).
    """
    port = free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    from_source = target == "serving.service:Siyu"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(bentoml), "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd or (REPO_ROOT if from_source else log_path.parent),
            env={**settings_env(settings), **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, process, log_path, ready_timeout)
            yield base
        finally:
            _stop(process)


def _wait_ready(base: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"server not ready after {timeout}s:\n{log_path.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
