"""Benchmark the ML-API proxy: ``POST /models/{id}/invocations`` against the container direct.

One run, loopback only, bounded request count:

1. starts the ML-API (``ml.api.create_ml_app`` under uvicorn, as ``hpcgate ml-api`` does)
   in a child process, with an in-memory registry holding the example model (the proxy
   path never calls the main API, so none is needed here);
2. runs the example model container through it (real Docker engine from
   scripts/services/docker.sh);
3. sends the same ``/invocations`` request (one pw.x input as JSON) N times straight to
   the container's published port and N times through the ML-API (JWT check, lookup,
   forward, copy back), alternating blocks of 100 so that both see the same machine
   noise; one keep-alive connection each, sequential requests;
4. prints p50/p90/p99/mean for both and the overhead (proxy - direct), as text and JSON.

No assertion on timing: the figures depend on the machine and its load.

Usage: .venv/bin/python bench/bench_ml_proxy.py [--requests 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ENV_FILE = Path(os.environ.get("HPCGATE_TEST_DOCKER_ENV", "/var/lib/hpcgate-test/docker/env"))
SECRET = "bench-secret-key-0123456789abcdef"  # a throwaway key for this run
PW_INPUT = """&control calculation='scf', prefix='si', pseudo_dir='/pseudo', outdir='./tmp' /
&system ibrav=2, celldm(1)=10.26, nat=2, ntyp=1, ecutwfc=18.0 /
&electrons conv_thr=1.0d-8, mixing_beta=0.7, electron_maxstep=12 /
ATOMIC_SPECIES
 Si 28.086 Si.pz-vbc.UPF
ATOMIC_POSITIONS alat
 Si 0.00 0.00 0.00
 Si 0.25 0.25 0.25
K_POINTS automatic
 4 4 4 0 0 0
"""


def _env_file() -> dict[str, str]:
    if not ENV_FILE.is_file():
        sys.exit(f"no Docker test engine ({ENV_FILE} missing): run scripts/services/docker.sh")
    out: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep:
            out[key] = (shlex.split(value) or [""])[0]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- child: the ML-API
def serve(port: int, namespace: str, image: str, docker_host: str) -> None:
    import uvicorn

    from hpcgate.settings import Settings
    from ml.api import create_ml_app
    from ml.reporting import MainApiClient
    from ml.settings import MlApiConfig

    class InMemoryRegistry(MainApiClient):
        def __init__(self) -> None:
            self.base_url = "memory://"
            self.model = {
                "id": 1,
                "name": "qe-scf-convergence",
                "version": "bench",
                "image": image,
                "state": "registered",
                "resources": {},
                "environment": {},
            }

        def list_models(self) -> list[dict[str, Any]]:
            return [self.model]

        def get_model(self, model_id: int) -> dict[str, Any] | None:
            return self.model if model_id == 1 else None

        def report_state(self, model_id: int, payload: dict[str, Any]) -> bool:
            return True

        def healthy(self) -> bool:
            return True

        def close(self) -> None:
            pass

    settings = Settings(env="test", auth={"secret_key": SECRET})
    config = MlApiConfig(namespace=namespace, docker_host=docker_host, port=port)
    app = create_ml_app(settings, config, main_api=InMemoryRegistry())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- parent: the measurement
def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))], 3)

    return {
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


def _time_block(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], n: int
) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, content=body, headers=headers)
        out.append(time.perf_counter() - t0)
        if r.status_code != 200:
            raise SystemExit(f"{url}: HTTP {r.status_code} {r.text[:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="per path (max 20000)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--namespace", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    env = _env_file()
    docker_host, image = env["DOCKER_HOST"], env["HPCGATE_TEST_ML_IMAGE"]
    if args.serve:
        serve(args.port, args.namespace, image, docker_host)
        return 0
    n = max(100, min(args.requests, 20000))

    from hpcgate.auth.jwt import issue_access_token
    from hpcgate.settings import Settings

    settings = Settings(env="test", auth={"secret_key": SECRET})
    token = issue_access_token(1, "admin", settings).token
    auth = {"Authorization": f"Bearer {token}"}
    port, namespace = _free_port(), f"bench-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--port", str(port), "--namespace", namespace],
        env={**os.environ, "HPCGATE_ENV": "test"},
    )
    base = f"http://127.0.0.1:{port}"
    import docker

    dclient = docker.DockerClient(base_url=docker_host, timeout=60)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or child.poll() is not None:
                raise SystemExit("the ML-API did not start")
            time.sleep(0.1)
        r = httpx.post(base + "/models/1/run", headers=auth, timeout=60)
        if r.status_code != 200:
            raise SystemExit(f"run failed: {r.status_code} {r.text}")
        (container,) = dclient.containers.list(filters={"label": f"hpcgate.namespace={namespace}"})
        host_port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        direct_url = f"http://127.0.0.1:{host_port}/invocations"
        proxy_url = f"{base}/models/1/invocations"
        body = json.dumps({"instances": [{"pw_input": PW_INPUT}]}).encode()
        headers = {"Content-Type": "application/json"}
        direct, proxied = [], []
        with httpx.Client(timeout=30) as dc, httpx.Client(timeout=30) as pc:
            _time_block(dc, direct_url, body, headers, 50)  # warm-up: connections, caches
            _time_block(pc, proxy_url, body, {**headers, **auth}, 50)
            t0 = time.perf_counter()
            done = 0
            while done < n:
                k = min(100, n - done)
                direct += _time_block(dc, direct_url, body, headers, k)
                proxied += _time_block(pc, proxy_url, body, {**headers, **auth}, k)
                done += k
            wall = time.perf_counter() - t0
        d, p = _percentiles(direct), _percentiles(proxied)
        result = {
            "requests_per_path": n,
            "body_bytes": len(body),
            "direct": d,
            "proxy": p,
            "overhead_ms": {
                k: round(p[k] - d[k], 3) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
            },
            "wall_s": round(wall, 2),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        }
        httpx.delete(base + "/models/1", headers=auth, timeout=60)
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
        for c in dclient.containers.list(
            all=True, filters={"label": f"hpcgate.namespace={namespace}"}
        ):
            c.remove(force=True)
        dclient.close()
    print(f"{n} sequential requests per path, {result['body_bytes']} B JSON body, keep-alive")
    print(f"{'':10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, row in (("direct", d), ("proxy", p), ("overhead", result["overhead_ms"])):
        print(
            f"{name:10}"
            + "".join(f"{row[k]:>10}" for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"))
        )
    print(f"load average (1 min) at the end: {result['load_avg_1m']} on {result['cpus']} CPUs")
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
