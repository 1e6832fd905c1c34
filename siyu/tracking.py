"""MLflow wiring: where runs go, which experiment, and the registry aliases serving reads."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from siyu.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryUnavailable(RuntimeError):
    """The MLflow backend cannot be reached; said at once rather than after MLflow's minutes of retries."""


# Ports of the database servers MLflow can use as its backend, when the URI names none.
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}
CONNECT_TIMEOUT_SECONDS = 3.0


def _ensure_sqlite_dir(uri: str) -> None:
    """Make a SQLite backend's directory; check that a server backend accepts connections at all."""
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in _DEFAULT_PORTS:
        return
    host, port = parsed.hostname or "localhost", parsed.port or _DEFAULT_PORTS[scheme]
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as exc:
        raise RegistryUnavailable(f"the model registry at {redacted(uri)} cannot be reached ({exc})") from exc


def redacted(uri: str) -> str:
    """`uri` with any password replaced by ***, for messages and logs."""
    password = urllib.parse.urlparse(uri).password
    return uri.replace(f":{password}@", ":***@") if password else uri


def use_registry(settings: Settings) -> None:
    """Point MLflow's process-wide tracking and registry URIs at our backend (model loading reads them)."""
    _ensure_sqlite_dir(settings.mlflow_tracking_uri)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)


def use_tracking(settings: Settings, experiment: str) -> str:
    """Point MLflow at our backend and experiment (artifacts under mlflow_artifact_root); returns its id."""
    use_registry(settings)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        root = settings.mlflow_artifact_root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(experiment, artifact_location=(root / experiment).as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def client(settings: Settings) -> MlflowClient:
    _ensure_sqlite_dir(settings.mlflow_tracking_uri)
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def alias_version(settings: Settings, name: str, alias: str) -> str | None:
    """The model version an alias points at, or None when the model or alias does not exist."""
    try:
        return str(client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def served_version(settings: Settings, name: str) -> str | None:
    """The version serving loads: the one `settings.pinned_versions` names (a Bento built by `siyu bento`
    serves exactly what it was built with), else whatever @champion points at now."""
    pinned = settings.pinned_versions.get(name)
    return pinned if pinned is not None else alias_version(settings, name, CHAMPION)


def register_first_aliases(settings: Settings, name: str, version: str) -> list[str]:
    """A new version becomes @challenger; it also becomes @champion only when no champion exists yet.

    Replacing a champion is `siyu promote`'s decision (on the same held-out rows), never a side effect of training.
    """
    registry = client(settings)
    registry.set_registered_model_alias(name, CHALLENGER, version)
    aliases = [CHALLENGER]
    if alias_version(settings, name, CHAMPION) is None:
        registry.set_registered_model_alias(name, CHAMPION, version)
        aliases.append(CHAMPION)
    return aliases


@dataclass
class Registration:
    """A logged and registered model version: its run, version, aliases and the metrics it was judged by."""

    run_id: str
    version: str
    aliases: list[str]
    metrics: dict[str, float]


def load_champion_pyfunc(settings: Settings, name: str, how_to_train: str) -> tuple[mlflow.pyfunc.PythonModel, str]:
    """The @champion version's Python model and its version, loaded by version so the two always agree.

    Raises LookupError naming `how_to_train` when no champion is registered.
    """
    use_registry(settings)
    version = served_version(settings, name)
    if version is None:
        raise LookupError(f"no @champion model {name!r} in {settings.mlflow_tracking_uri}: run {how_to_train} first")
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model(), version


def data_version(paths: list[Path]) -> str:
    """A short content fingerprint of the input files (names and bytes), logged with every run.

    Content rather than modification times, so the same data copied elsewhere or regenerated from the same
    seed gives the same fingerprint, and two runs that differ in it really saw different data.
    """
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@functools.cache
def code_version() -> str:
    """The git commit this code runs from (with "-dirty" for uncommitted changes), else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"siyu=={importlib.metadata.version('siyu')}"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
