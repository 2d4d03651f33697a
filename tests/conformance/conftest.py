"""Starts the custos-sim binary (built by cargo) on a free loopback port for each test module."""
import json
import os
import pathlib
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sim_binary() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("CUSTOS_SIM_BIN", ROOT / "target" / "debug" / "custos-sim"))
    if not path.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "custos-sim"], cwd=ROOT, check=True)
    return path


class Sim:
    def __init__(self, *args: str):
        self.dir = tempfile.TemporaryDirectory()
        self.truth_path = pathlib.Path(self.dir.name) / "truth.json"
        self.proc = subprocess.Popen(
            [str(sim_binary()), "--truth", str(self.truth_path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"custos-sim did not start: {line!r} {self.proc.stderr.read()}")
        self.base = line

    def truth(self):
        return json.loads(self.truth_path.read_text())

    def stats(self):
        import urllib.request

        with urllib.request.urlopen(self.base + "/sim/stats") as r:
            return json.load(r)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.dir.cleanup()


@pytest.fixture(scope="module")
def sim():
    s = Sim("--conversations", "30", "--seed", "7", "--transcode-ms", "0", "--batch-ms-per-item", "5",
            "--client-id", "sdk-client", "--client-secret", "sdk-secret", "--restore-ms", "500",
            "--archived", "0.2")
    yield s
    s.stop()
