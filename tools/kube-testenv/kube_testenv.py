"""Start and stop jobq's real Kubernetes + Kueue test environment on loopback.

etcd (Debian's etcd-server), kube-apiserver and Kueue (both built by build.sh into the cache) run
as plain processes on free 127.0.0.1 ports; everything they write lives in one env dir:

    DIR/state.json      PIDs (+ /proc start times), ports, argv of each process, token, server
    DIR/kubeconfig      server https://127.0.0.1:PORT, bearer token, the apiserver's CA
    DIR/logs/*.log      etcd.log, kube-apiserver.log, kueue.log
    DIR/etcd/ DIR/apiserver/ (cert-dir) DIR/kueue/ (config, webhook certs) DIR/pki/

Python 3.11 standard library only (plus the openssl CLI), so it runs under any python3.
Used by the CLI (`kube-testenv`) and by tests/kueue/conftest.py.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATE_FILE = "state.json"
KUEUE_NAMESPACE = "kueue-system"
# Kueue reads its metrics serving pair from this hard-coded path (notes/kueue-testenv-facts.md).
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
BUILD_HINT = "run `make kube-testenv` (tools/kube-testenv/build.sh) to build it"
# Order matters: stop Kueue, then the apiserver (before etcd: without etcd it hangs ~20 s), then etcd.
STOP_ORDER = ("kueue", "kube-apiserver", "etcd")
DEFAULT_FEATURE_GATES = {
    # Otherwise Kueue wants /visibility/tls.crt (hard-coded).
    "VisibilityOnDemand": False,
    # With hashing on, a new pending Workload shaped like one already waiting can be parked with
    # no status at all; off makes test assertions deterministic (real clusters run it on).
    "SchedulingEquivalenceHashing": False,
}


class TestEnvError(Exception):
    """The test environment could not be started, stopped or found."""


class NotBuiltError(TestEnvError):
    """The binaries are not in the cache (build.sh has not been run for these versions)."""


# --------------------------------------------------------------------------- build lookup


@dataclass(frozen=True)
class Build:
    dir: Path
    kube_apiserver: Path
    kueue: Path
    etcd: Path
    crds: Path
    webhook_manifest: Path
    kube_version: str
    kueue_version: str


def read_versions() -> dict[str, str]:
    out = {}
    for raw in (HERE / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip("\"'")
    return out


def cache_root() -> Path:
    if os.environ.get("JOBQ_KUBE_TESTENV_CACHE"):
        return Path(os.environ["JOBQ_KUBE_TESTENV_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "jobq-kube-testenv"


def _go_version() -> str | None:
    go = shutil.which("go")
    if not go:
        return None
    try:
        r = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() or None


def find_build() -> Build:
    """The cached build for versions.env (and this machine's Go, if go is on PATH)."""
    v = read_versions()
    prefix = f"kube-{v['KUBE_VERSION']}_kueue-{v['KUEUE_VERSION']}_"
    root = cache_root()
    gover = _go_version()
    if gover:
        candidates = [root / (prefix + gover)]
    else:  # no Go here (e.g. a test-only CI job with a restored cache): any Go version will do
        candidates = sorted(root.glob(prefix + "*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for d in candidates:
        manifest = d / "manifest.json"
        if not manifest.is_file():
            continue
        m = json.loads(manifest.read_text())
        etcd = Path(m.get("etcd") or "")
        if not (etcd.is_file() and os.access(etcd, os.X_OK)):
            found = shutil.which("etcd")
            if not found:
                raise NotBuiltError(f"etcd is not installed (apt-get install etcd-server); {BUILD_HINT}")
            etcd = Path(found)
        b = Build(
            dir=d,
            kube_apiserver=d / "bin" / "kube-apiserver",
            kueue=d / "bin" / "kueue",
            etcd=etcd,
            crds=d / "crds",
            webhook_manifest=d / "webhook" / "manifests.yaml",
            kube_version=m["kube_version"],
            kueue_version=m["kueue_version"],
        )
        missing = [p for p in (b.kube_apiserver, b.kueue, b.webhook_manifest) if not p.exists()]
        if missing or not list(b.crds.glob("*.yaml")):
            raise NotBuiltError(f"incomplete build in {d} (missing {missing or 'CRDs'}); {BUILD_HINT}")
        return b
    where = candidates[0] if candidates else root / (prefix + "<go version>")
    raise NotBuiltError(f"kube-apiserver/Kueue binaries not found in {where}; {BUILD_HINT}")


# --------------------------------------------------------------------------- processes

_children: dict[int, subprocess.Popen[bytes]] = {}  # processes this interpreter started


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None if there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _alive(pid: int, starttime: int | None) -> bool:
    st = _proc_stat(pid)
    if st is None:
        return False
    if starttime is not None and st[1] != starttime:
        return False  # PID reused by something else
    if st[0] in ("Z", "X"):
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    p = _children.pop(pid, None)
    if p is not None:
        p.poll()
        if p.returncode is None:
            _children[pid] = p
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _spawn(argv: Sequence[str], log: Path, *, die_with_parent: bool) -> dict[str, Any]:
    prefix: list[str] = []
    # With die_with_parent the process gets SIGKILL when this one dies (a killed pytest leaves
    # nothing behind). setpriv sets PR_SET_PDEATHSIG and execs (same PID). The signal fires when
    # the forking *thread* exits, so only do it from the main thread.
    setpriv = shutil.which("setpriv")
    if die_with_parent and setpriv and threading.current_thread() is threading.main_thread():
        prefix = [setpriv, "--pdeathsig", "KILL", "--"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as logf:
        p = subprocess.Popen(
            prefix + list(argv),
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C must not hit etcd before the apiserver
            close_fds=True,
        )
    _children[p.pid] = p
    st = _proc_stat(p.pid)
    return {"pid": p.pid, "starttime": st[1] if st else None, "argv": list(argv), "log": str(log)}


def _stop_process(name: str, info: dict[str, Any] | None, timeout: float = 30.0) -> None:
    """SIGTERM, wait up to timeout for exit, then SIGKILL. Quiet if it is already gone."""
    if not info or not info.get("pid"):
        return
    pid, starttime = int(info["pid"]), info.get("starttime")
    if not _alive(pid, starttime):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, starttime):
            _collect(pid)
            return
        time.sleep(0.05)
    print(f"kube-testenv: {name} (pid {pid}) ignored SIGTERM for {timeout:.0f} s; killing", file=sys.stderr)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid, starttime):
        time.sleep(0.05)
    _collect(pid)


def _collect(pid: int) -> None:
    """Wait for a child of ours that has exited, so no zombie or unwaited Popen is left behind."""
    p = _children.pop(pid, None)
    if p is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: str | Path, n: int = 25) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _run(argv: Sequence[str]) -> None:
    r = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise TestEnvError(f"{argv[0]} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------- HTTP (stdlib)

_NO_PROXY = urllib.request.ProxyHandler({})


class Api:
    """A tiny kube-apiserver client: explicit TLS settings (REQUESTS_CA_BUNDLE etc. are ignored)."""

    def __init__(self, server: str, token: str, ca_file: str | Path) -> None:
        self.server = server
        self.token = token
        ctx = ssl.create_default_context(cafile=str(ca_file))
        self._opener = urllib.request.build_opener(_NO_PROXY, urllib.request.HTTPSHandler(context=ctx))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, out = self.request(method, path, body, **kw)
        if status >= 300:
            msg = out.get("message") if isinstance(out, dict) else out
            raise TestEnvError(f"{method} {path}: HTTP {status}: {msg}")
        return out


def _http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(_NO_PROXY)
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _wait(
    what: str, cond: Any, timeout: float, proc: dict[str, Any] | None = None, interval: float = 0.1
) -> Any:
    """Poll cond() until it returns something truthy; fail early if proc died."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            r = cond()
            if r:
                return r
        except (OSError, ValueError, TestEnvError) as e:  # connection refused, TLS not up yet, ...
            last_exc = e
        if proc is not None and not _alive(proc["pid"], proc.get("starttime")):
            raise TestEnvError(f"{what}: process exited; last log lines:\n{_tail(proc['log'])}")
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            log = f"; last log lines:\n{_tail(proc['log'])}" if proc else ""
            raise TestEnvError(f"timed out after {timeout:.0f} s waiting for {what}{detail}{log}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the environment


def _yaml_docs(text: str) -> Iterator[str]:
    for doc in re.split(r"(?m)^---\s*$", text):
        if re.search(r"(?m)^kind:", doc):
            yield doc


def default_dir() -> Path:
    if os.environ.get("JOBQ_KUBE_TESTENV_DIR"):
        return Path(os.environ["JOBQ_KUBE_TESTENV_DIR"])
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"jobq-kube-testenv-{os.getuid()}"


class KubeTestEnv:
    """A running (or stopped) environment, described by DIR/state.json."""

    def __init__(self, dir: str | Path, *, die_with_parent: bool = False) -> None:
        """die_with_parent: processes this object starts get SIGKILL if this process dies."""
        self.dir = Path(dir).resolve()
        self.die_with_parent = die_with_parent

    # ---- state
    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def state(self) -> dict[str, Any]:
        try:
            st: dict[str, Any] = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return st

    def _save(self, st: dict[str, Any]) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(st, indent=2))
        os.replace(tmp, self.state_path)

    def _set_process(self, name: str, info: dict[str, Any] | None) -> None:
        st = self.state()
        st.setdefault("processes", {})[name] = info
        self._save(st)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def server(self) -> str:
        return str(self.state()["server"])

    @property
    def token(self) -> str:
        return str(self.state()["token"])

    @property
    def ca_file(self) -> Path:
        """PEM the apiserver's serving certificate verifies against (its self-signed CA)."""
        return self.dir / "apiserver" / "apiserver.crt"

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.state().get("ports", {}))

    def log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    def api(self) -> Api:
        return Api(self.server, self.token, self.ca_file)

    def running(self) -> dict[str, bool]:
        procs = self.state().get("processes", {})
        return {
            n: bool(procs.get(n)) and _alive(procs[n]["pid"], procs[n].get("starttime")) for n in STOP_ORDER
        }

    def env_exports(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig), "JOBQ_KUBE_TESTENV_DIR": str(self.dir)}

    # ---- start
    def start(
        self,
        build: Build | None = None,
        *,
        feature_gates: dict[str, bool] | None = None,
        timeout: float = 120.0,
    ) -> KubeTestEnv:
        build = build or find_build()
        if any(self.running().values()):
            raise TestEnvError(f"an environment is already running in {self.dir} (stop it first)")
        self.stop()  # stale state: make sure nothing recorded is left
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("etcd", "apiserver", "kueue", "pki", "logs"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        for f in (STATE_FILE, "kubeconfig", "tokens.csv"):
            (self.dir / f).unlink(missing_ok=True)
        etcd_client, etcd_peer, apiserver, webhook, health, metrics = _free_ports(6)
        token = secrets.token_hex(24)
        gates = {**DEFAULT_FEATURE_GATES, **(feature_gates or {})}
        self._save(
            {
                "version": 1,
                "dir": str(self.dir),
                "build": str(build.dir),
                "kube_version": build.kube_version,
                "kueue_version": build.kueue_version,
                "server": f"https://127.0.0.1:{apiserver}",
                "token": token,
                "ports": {
                    "etcd_client": etcd_client,
                    "etcd_peer": etcd_peer,
                    "apiserver": apiserver,
                    "kueue_webhook": webhook,
                    "kueue_health": health,
                    "kueue_metrics": metrics,
                },
                "processes": {},
            }
        )
        try:
            self._start_all(build, token, gates, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self, build: Build, token: str, gates: dict[str, bool], timeout: float) -> None:
        d, ports = self.dir, self.ports
        t0 = time.monotonic()
        pki = d / "pki"
        pki.mkdir()
        _run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"])
        _run(["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")])
        certs = d / "kueue" / "certs"
        certs.mkdir(parents=True)
        _run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                "-keyout", str(certs / "tls.key"), "-out", str(certs / "tls.crt"),
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ]
        )  # fmt: skip
        _install_metrics_certs(certs)
        (d / "tokens.csv").write_text(f'{token},admin,admin-uid,"system:masters"\n')
        (d / "tokens.csv").chmod(0o600)

        # etcd
        c, p = ports["etcd_client"], ports["etcd_peer"]
        etcd_argv = [
            str(build.etcd), "--name=jobq-testenv", f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{c}", f"--advertise-client-urls=http://127.0.0.1:{c}",
            f"--listen-peer-urls=http://127.0.0.1:{p}", f"--initial-advertise-peer-urls=http://127.0.0.1:{p}",
            f"--initial-cluster=jobq-testenv=http://127.0.0.1:{p}", "--initial-cluster-state=new",
            "--logger=zap", "--log-level=warn",
        ]  # fmt: skip
        info = _spawn(etcd_argv, self.log("etcd"), die_with_parent=self.die_with_parent)
        self._set_process("etcd", info)

        def etcd_healthy() -> bool:
            status, body = _http_get(f"http://127.0.0.1:{c}/health")
            return status == 200 and json.loads(body).get("health") == "true"

        _wait("etcd /health", etcd_healthy, timeout, info)

        # kube-apiserver
        apiserver_argv = [
            str(build.kube_apiserver), f"--etcd-servers=http://127.0.0.1:{c}",
            "--bind-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
            f"--cert-dir={d / 'apiserver'}", f"--token-auth-file={d / 'tokens.csv'}",
            "--authorization-mode=RBAC", "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24", "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true", "--endpoint-reconciler-type=none",
            # Without it, open watches (Kueue's) hold a SIGTERMed apiserver for over 30 s.
            "--shutdown-watch-termination-grace-period=2s",
        ]  # fmt: skip
        self._set_process("kube-apiserver", None)
        st = self.state()
        st["argv"] = {"kube-apiserver": apiserver_argv}
        self._save(st)
        self.start_apiserver(timeout=timeout)

        ca_pem = self.ca_file.read_bytes()
        self.kubeconfig.write_text(_kubeconfig(self.server, token, ca_pem))
        self.kubeconfig.chmod(0o600)
        api = self.api()

        # Kueue CRDs (the apiserver parses the YAML for us), then wait until Established.
        crd_names = []
        for f in sorted(build.crds.glob("*.yaml")):
            for doc in _yaml_docs(f.read_text()):
                out = api.ok(
                    "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc,
                    content_type="application/yaml",
                )  # fmt: skip
                crd_names.append(out["metadata"]["name"])
        api.ok("POST", "/api/v1/namespaces", {"metadata": {"name": KUEUE_NAMESPACE}})

        def established() -> bool:
            for name in crd_names:
                crd = api.ok("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conds = (crd.get("status") or {}).get("conditions") or []  # can be null at first
                if not any(x.get("type") == "Established" and x.get("status") == "True" for x in conds):
                    return False
            return True

        _wait("Kueue CRDs Established", established, timeout)

        # Kueue's own webhooks, by URL. Registered before Kueue runs so that we can see the
        # apiserver has picked them up (a dry-run Workload write fails while Kueue is down).
        ca_b64 = base64.b64encode((certs / "tls.crt").read_bytes()).decode()
        for doc in _yaml_docs(build.webhook_manifest.read_text()):
            kind = re.search(r"(?m)^kind:\s*(\S+)", doc).group(1)  # type: ignore[union-attr]
            plural = {
                "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
                "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
            }[kind]
            base = f"/apis/admissionregistration.k8s.io/v1/{plural}"
            parsed = api.ok("POST", base + "?dryRun=All", doc, content_type="application/yaml")
            hooks = []
            for h in parsed.get("webhooks") or []:
                path = ((h.get("clientConfig") or {}).get("service") or {}).get("path", "")
                if "kueue-x-k8s-io" not in path:
                    continue  # Jobs, Pods, JobSets, ...: jobq owns plain Workloads only
                h["clientConfig"] = {
                    "url": f"https://127.0.0.1:{ports['kueue_webhook']}{path}",
                    "caBundle": ca_b64,
                }
                hooks.append(h)
            name = "kueue-" + parsed["metadata"]["name"]
            api.ok(
                "POST",
                base,
                {
                    "apiVersion": parsed["apiVersion"],
                    "kind": kind,
                    "metadata": {"name": name},
                    "webhooks": hooks,
                },
            )

        _wait("the apiserver to call Kueue's webhooks", lambda: self._probe_webhook(api) == "down", timeout)

        # Kueue, out of cluster.
        cfg = {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": KUEUE_NAMESPACE,
            "health": {"healthProbeBindAddress": f"127.0.0.1:{ports['kueue_health']}"},
            "metrics": {"bindAddress": f"127.0.0.1:{ports['kueue_metrics']}"},
            "webhook": {"host": "127.0.0.1", "port": ports["kueue_webhook"], "certDir": str(certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "featureGates": gates,
        }
        cfg_path = d / "kueue" / "config.yaml"
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")  # JSON is YAML
        st = self.state()
        st["argv"]["kueue"] = [str(build.kueue), f"-config={cfg_path}", f"-kubeconfig={self.kubeconfig}"]
        st["feature_gates"] = gates
        self._save(st)
        self.start_kueue(timeout=timeout)
        st = self.state()
        st["started_in_seconds"] = round(time.monotonic() - t0, 2)
        self._save(st)

    # ---- the apiserver alone
    def start_apiserver(self, timeout: float = 120.0, *, kueue: str = "restart") -> None:
        """Start the apiserver (again) and wait for /readyz. What happens to a running Kueue:

        "restart" (default): stop it first, start it again once the apiserver is ready (~2 s).
            After an apiserver outage Kueue's informers reconnect with client-go's backoff and
            Kueue misses new objects for 5-60 s (longer after repeated outages), which makes
            tests slow and flaky; a fresh Kueue sees everything at once.
        "wait": leave it running and wait until it sees new objects again (wait_kueue_caught_up).
        "leave": leave it running and return as soon as the apiserver is ready.
        Call from a thread (asyncio.to_thread) when the code under test runs in your event loop.
        """
        if kueue not in ("restart", "wait", "leave"):
            raise ValueError(f"kueue must be restart, wait or leave, not {kueue!r}")
        st = self.state()
        if st.get("processes", {}).get("kube-apiserver") and self.running()["kube-apiserver"]:
            raise TestEnvError("kube-apiserver is already running")
        kueue_running = self.running()["kueue"]
        if kueue == "restart" and kueue_running:
            self.stop_kueue()
        info = _spawn(
            st["argv"]["kube-apiserver"], self.log("kube-apiserver"), die_with_parent=self.die_with_parent
        )
        self._set_process("kube-apiserver", info)
        ca = self.ca_file

        def ready() -> bool:
            if not ca.exists():
                return False
            status, _ = Api(st["server"], st["token"], ca).request("GET", "/readyz", timeout=3)
            return status == 200

        _wait("kube-apiserver /readyz", ready, timeout, info, interval=0.2)
        if kueue == "restart" and kueue_running:
            self.start_kueue(timeout)
        elif kueue == "wait" and kueue_running:
            self.wait_kueue_caught_up(timeout)

    def wait_kueue_caught_up(self, timeout: float = 120.0) -> float:
        """Wait until Kueue sees new objects again; returns the seconds it took.

        After an apiserver outage Kueue's informers reconnect with client-go's backoff, and for
        ~5-30 s Kueue does not see new Namespaces/Workloads (a Workload gets no status, or
        "workload namespace ... does not exist"). Probe: a fresh namespace holding a Workload
        for a missing LocalQueue, until Kueue marks it "LocalQueue ... doesn't exist"."""
        t0 = time.monotonic()
        api = self.api()
        ns = f"kueue-probe-{secrets.token_hex(4)}"
        api.ok(
            "POST",
            "/api/v1/namespaces",
            {"metadata": {"name": ns, "labels": {"jobq.dev/kube-testenv": "probe"}}},
        )
        base = f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{ns}/workloads"
        api.ok("POST", base, _probe_workload(ns, "probe"))

        def seen() -> bool:
            wl = api.ok("GET", f"{base}/probe")
            conds = (wl.get("status") or {}).get("conditions") or []
            return any("LocalQueue" in (c.get("message") or "") for c in conds)

        _wait(
            "Kueue to see new objects after the apiserver came back",
            seen,
            timeout,
            self.state()["processes"]["kueue"],
        )
        api.request("DELETE", f"{base}/probe")  # the namespace stays: no namespace controller here
        return time.monotonic() - t0

    def stop_apiserver(self) -> None:
        _stop_process("kube-apiserver", self.state().get("processes", {}).get("kube-apiserver"))

    def restart_apiserver(self, timeout: float = 120.0, *, kueue: str = "restart") -> None:
        """Stop the apiserver (SIGTERM, wait) and start it again on the same port and etcd.
        kueue: see start_apiserver; with "restart" Kueue is stopped before the apiserver."""
        if kueue == "restart" and self.running()["kueue"]:
            self.stop_kueue()
            self.stop_apiserver()
            self.start_apiserver(timeout=timeout, kueue="leave")
            self.start_kueue(timeout)
        else:
            self.stop_apiserver()
            self.start_apiserver(timeout=timeout, kueue=kueue)

    # ---- Kueue alone
    def _probe_webhook(self, api: Api) -> str:
        """'up' if a dry-run Workload write passes (through Kueue's webhooks once the apiserver
        knows them), 'down' if the apiserver fails calling them."""
        wl = _probe_workload(KUEUE_NAMESPACE, "jobq-testenv-probe")
        status, out = api.request(
            "POST", f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{KUEUE_NAMESPACE}/workloads?dryRun=All", wl
        )
        msg = out.get("message", "") if isinstance(out, dict) else str(out)
        if status < 300:
            return "up"
        if "failed calling webhook" in msg:
            return "down"
        raise TestEnvError(f"unexpected answer to a dry-run Workload: HTTP {status}: {msg}")

    def start_kueue(self, timeout: float = 120.0) -> None:
        st = self.state()
        if st.get("processes", {}).get("kueue") and self.running()["kueue"]:
            raise TestEnvError("kueue is already running")
        log = self.log("kueue")
        offset = log.stat().st_size if log.exists() else 0
        info = _spawn(st["argv"]["kueue"], log, die_with_parent=self.die_with_parent)
        self._set_process("kueue", info)

        # Its /readyz answers before its caches sync: wait for the ClusterQueue controller's workers.
        def workers_started() -> bool:
            with open(log, "rb") as f:
                f.seek(offset)
                for line in f:
                    if b"Starting workers" in line and b"clusterqueue" in line.lower():
                        return True
            return False

        _wait("Kueue's clusterqueue controller to start workers", workers_started, timeout, info)
        api = self.api()
        _wait("Kueue's webhook server", lambda: self._probe_webhook(api) == "up", timeout, info)

    def stop_kueue(self) -> None:
        _stop_process("kueue", self.state().get("processes", {}).get("kueue"))

    def restart_kueue(self, timeout: float = 120.0) -> None:
        self.stop_kueue()
        self.start_kueue(timeout=timeout)

    # ---- stop
    def stop(self) -> None:
        """Stop Kueue, then the apiserver (waiting for it), then etcd. Robust to stale state."""
        procs = self.state().get("processes", {})
        for name in STOP_ORDER:
            _stop_process(name, procs.get(name))
        if self.state_path.exists():
            st = self.state()
            st["processes"] = {}
            self._save(st)


def _probe_workload(namespace: str, name: str) -> dict[str, Any]:
    """A valid Workload for LocalQueue "missing-probe-queue" (which does not exist)."""
    container = {"name": "c", "image": "none", "resources": {"requests": {"cpu": "1m"}}}
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "queueName": "missing-probe-queue",
            "podSets": [
                {
                    "name": "main",
                    "count": 1,
                    "template": {"spec": {"containers": [container], "restartPolicy": "Never"}},
                }
            ],
        },
    }


def _install_metrics_certs(src: Path) -> None:
    """Kueue insists on /etc/kueue/metrics/certs/tls.{crt,key}; any valid pair will do."""
    crt, key = METRICS_CERT_DIR / "tls.crt", METRICS_CERT_DIR / "tls.key"
    if crt.is_file() and key.is_file():
        return
    try:
        METRICS_CERT_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("tls.key", "tls.crt"):
            tmp = METRICS_CERT_DIR / f".{name}.{os.getpid()}"
            shutil.copyfile(src / name, tmp)
            os.replace(tmp, METRICS_CERT_DIR / name)
    except OSError as e:
        raise TestEnvError(
            f"Kueue needs a certificate pair in {METRICS_CERT_DIR} (hard-coded); cannot write it: {e}. "
            f"As root: mkdir -p {METRICS_CERT_DIR} && make it writable, or run once as root."
        ) from e


def _kubeconfig(server: str, token: str, ca_pem: bytes) -> str:
    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: jobq-testenv\n"
        "  cluster:\n"
        f"    server: {q(server)}\n"
        f"    certificate-authority-data: {q(base64.b64encode(ca_pem).decode())}\n"
        "users:\n"
        "- name: admin\n"
        "  user:\n"
        f"    token: {q(token)}\n"
        "contexts:\n"
        "- name: jobq-testenv\n"
        "  context:\n"
        "    cluster: jobq-testenv\n"
        "    user: admin\n"
        "current-context: jobq-testenv\n"
    )


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="env dir (default: $JOBQ_KUBE_TESTENV_DIR or /tmp/jobq-kube-testenv-UID)",
    )
    ap = argparse.ArgumentParser(
        prog="kube-testenv",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub = ap.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("start", parents=[common], help="start etcd, kube-apiserver and Kueue")
    s.add_argument(
        "--feature-gate",
        action="append",
        default=[],
        metavar="NAME=BOOL",
        help="Kueue feature gate (repeatable)",
    )
    s.add_argument("--timeout", type=float, default=120.0)
    for verb, hlp in (
        ("restart-apiserver", "stop and start kube-apiserver (same port, same etcd)"),
        ("start-apiserver", "start kube-apiserver again"),
    ):
        s = sub.add_parser(verb, parents=[common], help=hlp)
        s.add_argument(
            "--kueue", choices=("restart", "wait", "leave"), default="restart",
            help="a running Kueue: restart it (default), wait until it catches up, or leave it",
        )  # fmt: skip
    for verb, hlp in (
        ("stop", "stop Kueue, kube-apiserver, etcd (in that order)"),
        ("env", 'print shell exports: eval "$(kube-testenv env)"'),
        ("status", "print state and which processes run"),
        ("check", "exit 0 if the binaries are built, else print why and exit 1"),
        ("stop-apiserver", "stop kube-apiserver alone"),
        ("restart-kueue", "stop and start Kueue alone"),
        ("stop-kueue", "stop Kueue alone"),
        ("start-kueue", "start Kueue alone again"),
    ):
        sub.add_parser(verb, parents=[common], help=hlp)
    args = ap.parse_args(argv)
    env = KubeTestEnv(getattr(args, "dir", None) or default_dir())
    try:
        if args.verb == "start":
            gates = {}
            for g in args.feature_gate:
                k, _, v = g.partition("=")
                gates[k] = v.lower() in ("1", "true", "yes", "on")
            t0 = time.monotonic()
            env.start(feature_gates=gates, timeout=args.timeout)
            print(
                f"kube-testenv: started in {time.monotonic() - t0:.1f} s; {env.server}; dir {env.dir}",
                file=sys.stderr,
            )
            print(f'eval "$({Path(sys.argv[0]).name} env --dir {env.dir})"  # to use it', file=sys.stderr)
        elif args.verb == "stop":
            env.stop()
        elif args.verb == "env":
            if not env.state_path.exists():
                raise TestEnvError(f"no environment in {env.dir}")
            for k, v in env.env_exports().items():
                print(f"export {k}={_shquote(v)}")
        elif args.verb == "status":
            st = env.state()
            if not st:
                print(f"no environment in {env.dir}")
                return 1
            print(
                json.dumps(
                    {
                        "server": st.get("server"),
                        "dir": st.get("dir"),
                        "ports": st.get("ports"),
                        "running": env.running(),
                    },
                    indent=2,
                )
            )
            return 0 if all(env.running().values()) else 1
        elif args.verb == "check":
            b = find_build()
            print(f"built: {b.dir}")
        elif args.verb in ("restart-apiserver", "start-apiserver"):
            getattr(env, args.verb.replace("-", "_"))(kueue=args.kueue)
        else:
            getattr(env, args.verb.replace("-", "_"))()
    except TestEnvError as e:
        print(f"kube-testenv: {e}", file=sys.stderr)
        return 1
    return 0


def _shquote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":
    sys.exit(main())
