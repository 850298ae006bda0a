"""Release check: build the sdist and the wheel, `twine check` them, install each in a
fresh venv and use it as a user would (start, pika round trip, SIGTERM), and check
that a type checker sees the embedding API's types through py.typed.

Run by .ci/run with the test venv active (it has pika, mypy, build and twine):
    python .ci/wheel_smoke.py
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0  # seconds from start to the "listening on" line
STOP_TIMEOUT = 30.0
# A user's code that only type-checks wrong if mypy sees Broker's real signature.
TYPED_SNIPPET = "import amqpbroker\nbroker: int = amqpbroker.Broker()\n"


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, text=True, **kwargs)  # type: ignore[call-overload]


def version() -> str:
    namespace: dict[str, object] = {}
    text = (ROOT / "amqpbroker" / "__init__.py").read_text()
    line = next(x for x in text.splitlines() if x.startswith("__version__"))
    exec(line, namespace)
    return str(namespace["__version__"])


def round_trip(port: int) -> None:
    params = pika.ConnectionParameters("127.0.0.1", port, blocked_connection_timeout=10)
    with pika.BlockingConnection(params) as connection:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, b"smoke")
        for _ in range(100):
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                assert body == b"smoke", body
                return
            time.sleep(0.01)
        raise AssertionError("the published message never arrived")


def smoke(artifact: Path, workdir: Path, expected_version: str) -> None:
    env_dir = workdir / artifact.name.replace(".", "_")
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / "bin"
    # -qq: errors only (a pip config naming local indexes that do not exist warns per package)
    run(bindir / "pip", "install", "-qq", artifact)
    exe = bindir / "amqpbroker"
    shown = run(exe, "--version", capture_output=True).stdout.strip()
    assert shown == f"amqpbroker {expected_version}", shown
    started = time.monotonic()
    # Run from the work dir, so that the checkout's amqpbroker/ cannot be imported.
    proc = subprocess.Popen(
        [exe, "--port", "0", "--transient", "--no-management"],
        stdout=subprocess.PIPE, text=True, cwd=workdir,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = time.monotonic() - started
        assert line.startswith("amqpbroker: listening on amqp://"), line
        assert ready < READY_TIMEOUT, ready
        port = int(line.rsplit(":", 1)[1])
        round_trip(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"{artifact.name}: installed, ready in {ready * 1000:.0f} ms, pika round trip ok")
    snippet = workdir / "user_code.py"
    snippet.write_text(TYPED_SNIPPET)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", str(bindir / "python"),
         "--no-incremental", str(snippet)],
        capture_output=True, text=True, cwd=workdir,
    )  # fmt: skip
    assert 'expression has type "Broker"' in checked.stdout, checked.stdout + checked.stderr
    print(f"{artifact.name}: a type checker sees amqpbroker.Broker")


def main() -> int:
    expected = version()
    with tempfile.TemporaryDirectory(prefix="amqpbroker-release-") as tmp:
        workdir = Path(tmp)
        dist = workdir / "dist"
        run(sys.executable, "-m", "build", "--outdir", dist, ROOT, stdout=subprocess.DEVNULL)
        artifacts = sorted(dist.iterdir())
        names = [a.name for a in artifacts]
        assert names == [
            f"amqpbroker-{expected}-py3-none-any.whl",
            f"amqpbroker-{expected}.tar.gz",
        ], names
        run(sys.executable, "-m", "twine", "check", "--strict", *artifacts)
        for artifact in artifacts:
            smoke(artifact, workdir, expected)
        shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch dir
    print("wheel smoke test: passed")
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    sys.exit(main())
