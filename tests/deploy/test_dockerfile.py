"""The container image: hadolint, the Dockerfile's promises (multi-stage, wheel-only,
fixed non-root user, read-only root, HEALTHCHECK, STOPSIGNAL, exec form, labels), and,
since no container runtime runs here, what the image would run: the built wheel in a
fresh venv, started as UID 10001 with the image's environment, /tmp its only writable
place."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy import dockerfile
from tests.deploy.common import DEPLOY, REPO, check_env_names, known_env_names, tool
from tests.integration.provider_fixture import RunningProvider, start_dev_provider
from tests.support.procs import free_port

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
UID = GID = 10001
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def stages() -> list[list[dockerfile.Instruction]]:
    return dockerfile.stages(dockerfile.parse(DOCKERFILE.read_text()))


def _one(stage: list[dockerfile.Instruction], keyword: str) -> str:
    found = [i.args for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_and_the_final_stage_installs_wheels_only(stages) -> None:
    assert len(stages) == 2
    build, runtime = stages
    assert "pip wheel" in " ".join(i.args for i in build if i.keyword == "RUN")
    # The final stage copies no source and builds nothing: it installs the build stage's
    # wheels from a bind mount, offline, and the pinned version of bff.
    assert not [i for i in runtime if i.keyword in ("COPY", "ADD")]
    runs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert "from=build" in runs and "--no-index" in runs
    assert "pip wheel" not in runs and "apt-get" not in runs and "setup.py" not in runs
    arg = _one(runtime, "ARG")
    assert arg == f"BFF_VERSION={VERSION}", "the image's version follows pyproject.toml"
    # Both stages use the one pinned base: a tag with a patch version, never `latest`.
    base = _one(stages[0], "FROM").split()[0]
    assert base == "${PYTHON_IMAGE}" and _one(runtime, "FROM") == "${PYTHON_IMAGE} AS runtime"
    pinned = DOCKERFILE.read_text().split("ARG PYTHON_IMAGE=", 1)[1].split()[0]
    assert pinned.startswith("python:3.11.") and "-slim" in pinned


def test_runtime_stage_promises(stages) -> None:
    runtime = stages[-1]
    assert _one(runtime, "USER") == f"{UID}:{GID}"  # numeric: runAsNonRoot can verify it
    runs = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert f"--uid {UID}" in runs and f"--gid {GID}" in runs
    assert _one(runtime, "STOPSIGNAL") == "SIGTERM"
    assert dockerfile.exec_form(_one(runtime, "ENTRYPOINT")) == ["bff"]
    assert dockerfile.exec_form(_one(runtime, "CMD"))[0] == "serve"
    health = _one(runtime, "HEALTHCHECK")
    assert dockerfile.exec_form(health.split("CMD", 1)[1])[0] == "python"  # no curl needed
    assert _one(runtime, "VOLUME") == '["/tmp"]'
    env = dockerfile.runtime_env(runtime)
    check_env_names({n for n in env if n.startswith(("BFF_", "PROMETHEUS_"))})
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")
    assert env["BFF_ADMIN_LISTEN"] == "0.0.0.0:9091" and env["BFF_LOG_FORMAT"] == "json"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # The multiprocess directory exists in the image, owned by the user (a Docker
    # volume on /tmp starts as a copy of it; Kubernetes mounts an emptyDir there).
    assert f"install -d -o {UID} -g {GID} -m 0700 {env['PROMETHEUS_MULTIPROC_DIR']}" in runs
    labels = _one(runtime, "LABEL")
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert {"8000", "9091"} <= set(_one(runtime, "EXPOSE").split())


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".venv-tools", "**/node_modules", "tests", "bench-results"):
        assert entry in ignored


# ---- what the image would run ---------------------------------------------------------


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_dev_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def image_root() -> Iterator[Path]:
    """A stand-in for the image's filesystem: root-owned, readable by all, writable by
    root only; `tmp/` (the declared volume) alone belongs to UID 10001."""
    root = Path(tempfile.mkdtemp(prefix="bff-image-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# setpriv keeps its capabilities until its own exec: /usr/bin/env makes every exec after
# it (bff, its interpreter) happen with UID 10001's permissions alone.
AS_USER = ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", "--no-new-privs"]
AS_USER += ["--inh-caps=-all", "/usr/bin/env", "--"]


def _interpreter_for_uid() -> str:
    """A Python 3.11+ that UID 10001 can run (the image's is /usr/local/bin/python; a
    pyenv build under /root is not readable by other users)."""
    candidates = [os.path.realpath(sys._base_executable), "/usr/local/bin/python3.11"]
    candidates += ["/usr/bin/python3.11", shutil.which("python3") or ""]
    for python in filter(os.path.isfile, candidates):
        probe = subprocess.run(
            [*AS_USER, python, "-c", "import sys, ensurepip; assert sys.version_info >= (3, 11)"],
            capture_output=True,
            timeout=30,
            cwd="/",
        )
        if probe.returncode == 0:
            return python
    pytest.skip(f"no Python 3.11+ on this machine that UID {UID} can run: {candidates}")


def _build_context(stage: list[dockerfile.Instruction], dest: Path) -> Path:
    """The build stage's source tree: exactly what its COPY instructions take from the
    context (so a file the build needs but the Dockerfile forgets fails here too), never
    the worktree with its stale build/ folder."""
    workdir = dest / _one(stage, "WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    for ins in stage:
        if ins.keyword == "COPY":
            *sources, target = ins.args.split()
            for source in sources:
                origin, into = REPO / source, workdir / target
                if origin.is_dir():
                    shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    into.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, into / origin.name)
    return workdir


@pytest.fixture(scope="module")
def installed(stages, image_root: Path) -> Path:
    """The wheel built as the build stage builds it, installed into a fresh venv (pip's
    cache makes the dependencies quick; the running pip installs into it, as the
    image's own pip would); returns the venv."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("switching to UID 10001 needs root and setpriv; CI has both")
    python = _interpreter_for_uid()
    source = _build_context(stages[0], image_root / "build")
    wheels = image_root / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(source)])
    (wheel,) = wheels.glob(f"bff-{VERSION}-*.whl")
    venv = image_root / "venv"
    _run([python, "-m", "venv", "--without-pip", str(venv)])
    # With the extras the image installs (`bff[otel]==…`).
    runs = " ".join(i.args for i in stages[-1] if i.keyword == "RUN")
    extras = re.search(r'"bff(\[[a-z,]+\])?==', runs)
    assert extras, "the runtime stage installs bff by its pinned version"
    _run([*pip, "--python", str(venv / "bin" / "python"), "install", f"{wheel}{extras[1] or ''}"])
    shutil.rmtree(wheels)
    shutil.rmtree(image_root / "build")
    return venv


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}{result.stderr}"


def _owned_by_uid(root: Path, *, skip: Path) -> list[str]:
    """Every path under `root` (recursively, `skip` excluded) that UID 10001 owns."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        found += [str(here / n) for n in dirnames + filenames if _uid(here / n) == UID]
    return found


def _uid(path: Path) -> int:
    try:
        return os.lstat(path).st_uid
    except FileNotFoundError:
        return -1


def test_the_image_command_serves_as_uid_10001_with_a_read_only_root(
    stages, installed: Path, image_root: Path, op: RunningProvider
) -> None:
    runtime = stages[-1]
    image_env = dockerfile.runtime_env(runtime)
    argv = dockerfile.exec_form(_one(runtime, "ENTRYPOINT")) + dockerfile.exec_form(
        _one(runtime, "CMD")
    )
    port, admin_port = free_port(), free_port()
    # The CMD, with the loopback address and a free port for this machine.
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)

    tmp = image_root / "tmp"  # the declared volume, as an emptyDir: empty, owned by 10001
    tmp.mkdir(mode=0o1777)
    metrics_dir = tmp / Path(image_env["PROMETHEUS_MULTIPROC_DIR"]).relative_to("/tmp")
    metrics_dir.mkdir(mode=0o700)
    os.chown(metrics_dir, UID, GID)
    workdir = image_root / _one(runtime, "WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    # Secrets as files (the Kubernetes Secret volume), config as a read-only TOML file.
    secrets = image_root / "secrets"
    secrets.mkdir(mode=0o755)
    for name, value in (
        ("client-secret", op.client_secret),
        ("secret-key", f"image-test-{uuid.uuid4().hex}-0123456789abcdef"),
    ):
        (secrets / name).write_text(value)
        os.chown(secrets / name, 0, GID)
        (secrets / name).chmod(0o440)
    config = image_root / "etc" / "bff.toml"
    config.parent.mkdir()
    config.write_text('store_prefix = "bff-image-test"\naccess_log = true\n')

    env = {
        **image_env,
        "PATH": f"{installed / 'bin'}:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "TMPDIR": str(tmp),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "BFF_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "BFF_CONFIG": str(config),
        "BFF_ISSUER": op.issuer,
        "BFF_CLIENT_ID": op.client_id,
        "BFF_CLIENT_SECRET_FILE": str(secrets / "client-secret"),
        "BFF_SECRET_KEY_FILE": str(secrets / "secret-key"),
        "BFF_SESSION_STORE": os.environ.get("BFF_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "BFF_STORE_PREFIX": f"test-image-{uuid.uuid4().hex[:12]}",
    }
    log = image_root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*AS_USER, *argv], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    ready = True
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready, f"bff serve never became ready:\n{log.read_text(errors='replace')}"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        if "BFF_ADMIN_LISTEN" in known_env_names():  # once the admin listener has landed
            # Prometheus text (empty until a labelled metric has counted something).
            admin = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=5)
            assert admin.status_code == 200
            assert admin.headers["content-type"].startswith("text/plain; version=")
            ready_detail = httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=5)
            assert ready_detail.status_code == 200
            assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404
        # The image's HEALTHCHECK, run as the image's user with the image's python.
        health = dockerfile.exec_form(_one(runtime, "HEALTHCHECK").split("CMD", 1)[1])
        health = [h.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for h in health]
        probe = subprocess.run([*AS_USER, *health], env=env, cwd=workdir, timeout=30)
        assert probe.returncode == 0
        assert os.stat(f"/proc/{proc.pid}").st_uid == UID  # really not root
    finally:
        proc.send_signal(signal.SIGTERM)  # the STOPSIGNAL
        try:
            code = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    # A clean stop: 0 (bff's graceful shutdown), or uvicorn re-raising the SIGTERM it
    # handled after shutting down (exit status 143 in a container): never a crash.
    assert code in (0, -signal.SIGTERM), log.read_text(errors="replace")
    assert "Application shutdown complete" in log.read_text(errors="replace")
    # Nothing written by UID 10001 outside the tmp volume: not in the venv, the working
    # directory or the config, and not in the machine's shared temporary folders.
    assert _owned_by_uid(image_root, skip=tmp) == []
    for shared in ("/tmp", "/var/tmp", "/dev/shm"):  # their top level: others' files are deep
        if Path(shared).is_dir():
            assert [p for p in Path(shared).iterdir() if _uid(p) == UID] == []
