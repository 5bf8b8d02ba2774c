"""Fixtures for the kueue test tier: a real etcd + kube-apiserver + Kueue (tools/kube-testenv).

* ``kube_testenv`` (session): the running environment, a ``kube_testenv.KubeTestEnv``
  (tools/kube-testenv/kube_testenv.py) with
  ``.kubeconfig`` (Path), ``.server`` (https URL), ``.token``, ``.ca_file``, ``.dir`` and the fault
  helpers ``restart_apiserver()``, ``stop_apiserver()``/``start_apiserver()``,
  ``restart_kueue()``, ``stop_kueue()``/``start_kueue()`` (blocking; each waits until ready).
  Started once in a tmp dir and stopped at session end. Skips when the binaries are not built,
  fails instead when JOBQ_REQUIRE_KUEUE=1. With JOBQ_KUBE_TESTENV_DIR set (e.g. after
  ``eval "$(tools/kube-testenv/kube-testenv env)"``) that running environment is used and left running.
* ``kube_api`` (function, async): a kubernetes_asyncio ``ApiClient`` for it.
* ``kueue_objects`` (function, async): factory ``await kueue_objects(quota=..., flavors=...,
  preemption=..., ...)`` -> ``KueueQueues`` (fresh namespace, ResourceFlavor(s), ClusterQueue,
  LocalQueue; WorkloadPriorityClasses ``low``=100 and ``high``=1000); all deleted after the test.
* ``kueue_namespace`` (function, async): ``await kueue_objects()`` with the defaults.
* ``kueue_farm`` (function, async): factory ``farm = await kueue_farm(**kueue_objects kwargs)`` ->
  ``KueueFarm``: real jobqd processes in kueue mode for the test's namespace (``farm.jobqd()``),
  real jobq-node processes (``farm.node(...)``), synchronous reads of Kueue objects, job helpers,
  and ``await farm.until(check)`` (a deadline, never a bare sleep). Its processes stop after the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO / "tools" / "kube-testenv"))
import kube_testenv as kte  # type: ignore[import-not-found,unused-ignore]  # noqa: E402

from tests.support.procs import Jobqd, NodeProc  # noqa: E402

KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
API_VERSION = f"{KUEUE_GROUP}/{KUEUE_VERSION}"
DEFAULT_QUOTA = {"cpu": "4", "memory": "8Gi"}
DEFAULT_PRIORITY_CLASSES = {"low": 100, "high": 1000}
_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kueue: needs the real kube-apiserver + Kueue environment (tools/kube-testenv)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == _HERE or _HERE in item.path.parents:
            item.add_marker(pytest.mark.kueue)


def _required() -> bool:
    return os.environ.get("JOBQ_REQUIRE_KUEUE", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def kube_testenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kte.KubeTestEnv]:
    reuse = os.environ.get("JOBQ_KUBE_TESTENV_DIR")
    if reuse:
        env = kte.KubeTestEnv(reuse)
        if not all(env.running().values()):
            pytest.fail(
                f"JOBQ_KUBE_TESTENV_DIR={reuse} but its environment is not running: {env.running()}",
                pytrace=False,
            )
        yield env
        return
    try:
        build = kte.find_build()
    except kte.NotBuiltError as e:
        if _required():
            pytest.fail(f"JOBQ_REQUIRE_KUEUE=1: {e}", pytrace=False)
        pytest.skip(str(e))
    env = kte.KubeTestEnv(tmp_path_factory.mktemp("kube-testenv"), die_with_parent=True)
    try:
        env.start(build)  # stops whatever it started if it fails
    except kte.TestEnvError as e:
        pytest.fail(f"the Kubernetes + Kueue test environment did not start: {e}", pytrace=False)
    try:
        yield env
    finally:
        env.stop()


@pytest_asyncio.fixture
async def kube_api(kube_testenv: kte.KubeTestEnv) -> AsyncIterator[Any]:
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    await config.load_kube_config(
        config_file=str(kube_testenv.kubeconfig), client_configuration=cfg, persist_config=False
    )
    async with client.ApiClient(configuration=cfg) as api:
        yield api


@dataclass
class KueueQueues:
    """What ``kueue_objects`` created for one test."""

    namespace: str
    local_queue: str
    cluster_queue: str
    flavors: list[str]  # ResourceFlavor names, in the ClusterQueue's order
    priority_classes: dict[str, int] = field(default_factory=dict)  # WorkloadPriorityClass name -> value


def _dns_label(s: str, n: int) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", s.lower()).strip("-")
    return s[:n].rstrip("-") or "t"


async def _wait_active(what: str, get: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        obj = await get()
        conds = (obj.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Active" and c.get("status") == "True" for c in conds):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not Active after {timeout} s: {conds}")
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def kueue_objects(
    kube_api: Any, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Awaitable[KueueQueues]]]:
    """Factory for a test's Kueue objects. Keyword arguments (all optional):

    quota              {"cpu": "4", "memory": "8Gi"}: nominal quota of the single default flavor
    flavors            [{"name": "gpu", "nodeLabels": {...}, "quota": {"cpu": "2"}}, ...] instead of
                       one default flavor; names get "-<namespace>" appended (unique per test)
    preemption         ClusterQueue spec.preemption, e.g. {"withinClusterQueue": "LowerPriority"}
                       (default: Kueue's, i.e. no preemption)
    queueing_strategy  "BestEffortFIFO" (default) or "StrictFIFO"
    cluster_queue_spec extra ClusterQueue spec fields (merged last), e.g. {"cohortName": "c1"}
    local_queue        LocalQueue name (default "lq")
    priority_classes   {"low": 100, "high": 1000}: WorkloadPriorityClasses, created if missing
                       (cluster-wide, shared between tests, never deleted; a different value is an error)
    The ClusterQueue and LocalQueue are Active when it returns.
    """
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    core = client.CoreV1Api(kube_api)
    co = client.CustomObjectsApi(kube_api)
    cleanups: list[Callable[[], Awaitable[Any]]] = []
    base = _dns_label(request.node.name, 40)

    async def make(
        *,
        quota: dict[str, str] | None = None,
        flavors: list[dict[str, Any]] | None = None,
        preemption: dict[str, Any] | None = None,
        queueing_strategy: str = "BestEffortFIFO",
        cluster_queue_spec: dict[str, Any] | None = None,
        local_queue: str = "lq",
        priority_classes: dict[str, int] | None = None,
    ) -> KueueQueues:
        ns = f"{base}-{uuid.uuid4().hex[:6]}"
        ns_body: dict[str, Any] = {"metadata": {"name": ns, "labels": {"jobq.dev/test": "kueue"}}}
        await core.create_namespace(ns_body)  # type: ignore[arg-type]  # a dict body is fine
        cleanups.append(
            lambda: co.delete_collection_namespaced_custom_object(KUEUE_GROUP, KUEUE_VERSION, ns, "workloads")
        )

        for name, value in (
            DEFAULT_PRIORITY_CLASSES if priority_classes is None else priority_classes
        ).items():
            body = {
                "apiVersion": API_VERSION,
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": name},
                "value": value,
            }
            try:
                await co.create_cluster_custom_object(
                    KUEUE_GROUP, KUEUE_VERSION, "workloadpriorityclasses", body
                )
            except ApiException as e:
                if e.status != 409:
                    raise
                old = await co.get_cluster_custom_object(
                    KUEUE_GROUP, KUEUE_VERSION, "workloadpriorityclasses", name
                )
                if old.get("value") != value:
                    raise AssertionError(
                        f"WorkloadPriorityClass {name} exists with value {old.get('value')}, not {value}"
                    ) from e

        specs = flavors or [{"name": "default-flavor", "quota": quota or DEFAULT_QUOTA}]
        resources = sorted({r for f in specs for r in (f.get("quota") or {})})
        rf_names = []
        for f in specs:
            rf = f"{f['name']}-{ns}"
            spec: dict[str, Any] = {}
            if f.get("nodeLabels"):
                spec["nodeLabels"] = f["nodeLabels"]
            body = {
                "apiVersion": API_VERSION,
                "kind": "ResourceFlavor",
                "metadata": {"name": rf},
                "spec": spec,
            }
            await co.create_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "resourceflavors", body)
            cleanups.append(
                functools.partial(
                    co.delete_cluster_custom_object, KUEUE_GROUP, KUEUE_VERSION, "resourceflavors", rf
                )
            )
            rf_names.append(rf)

        cq = f"cq-{ns}"
        cq_spec: dict[str, Any] = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "queueingStrategy": queueing_strategy,
            "resourceGroups": [
                {
                    "coveredResources": resources,
                    "flavors": [
                        {
                            "name": rf,
                            "resources": [
                                {"name": r, "nominalQuota": str((f.get("quota") or {}).get(r, "0"))}
                                for r in resources
                            ],
                        }
                        for rf, f in zip(rf_names, specs, strict=True)
                    ],
                }
            ],
        }
        if preemption:
            cq_spec["preemption"] = preemption
        cq_spec.update(cluster_queue_spec or {})
        body = {"apiVersion": API_VERSION, "kind": "ClusterQueue", "metadata": {"name": cq}, "spec": cq_spec}
        await co.create_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", body)
        cleanups.append(
            lambda: co.delete_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", cq)
        )
        lq: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "LocalQueue",
            "metadata": {"name": local_queue, "namespace": ns},
            "spec": {"clusterQueue": cq},
        }
        await co.create_namespaced_custom_object(KUEUE_GROUP, KUEUE_VERSION, ns, "localqueues", lq)
        cleanups.append(
            lambda: co.delete_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, ns, "localqueues", local_queue
            )
        )
        await _wait_active(
            f"ClusterQueue {cq}",
            lambda: co.get_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", cq),
        )
        await _wait_active(
            f"LocalQueue {ns}/{local_queue}",
            lambda: co.get_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, ns, "localqueues", local_queue
            ),
        )
        return KueueQueues(
            namespace=ns,
            local_queue=local_queue,
            cluster_queue=cq,
            flavors=rf_names,
            priority_classes=dict(DEFAULT_PRIORITY_CLASSES if priority_classes is None else priority_classes),
        )

    yield make
    # Best effort and without waiting: there is no namespace controller (no kube-controller-manager),
    # so the namespace itself is left behind; its ClusterQueue selects only it, so nothing leaks.
    for undo in reversed(cleanups):
        with contextlib.suppress(Exception):  # cleanup must not mask the test's outcome
            await undo()


@pytest_asyncio.fixture
async def kueue_namespace(kueue_objects: Callable[..., Awaitable[KueueQueues]]) -> KueueQueues:
    return await kueue_objects()


# -- jobqd in kueue mode with real jobq-node processes (issue 5 part 2) ----------------------------
#
# ``kueue_farm`` (function, async factory): ``farm = await kueue_farm(**kueue_objects kwargs)`` makes
# the test's Kueue objects (``farm.q``) and returns a ``KueueFarm`` that starts real jobqd processes
# (``farm.jobqd()``: ``--admission kueue --kubeconfig … --namespace <the test's namespace>``) and
# jobq-node processes (``farm.node(...)``), reads Kueue objects synchronously (``farm.workloads()``,
# ``farm.workload(name)``, ``farm.cluster_queue()``), and waits with a deadline (``await farm.until``).
# Every process it started is stopped after the test.

MANAGED = "app.kubernetes.io/managed-by=jobqd"


def kcondition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """A condition of a Kubernetes object (None if absent)."""
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


@dataclass
class KueueFarm:
    env: kte.KubeTestEnv
    q: KueueQueues
    tmp: Path
    jobqds: list[Jobqd] = field(default_factory=list)
    nodes: list[NodeProc] = field(default_factory=list)

    # -- processes ---------------------------------------------------------------------------

    def jobqd(self, *extra: str, name: str = "d") -> Jobqd:
        d = Jobqd(
            self.tmp / name,
            extra=[
                "--admission",
                "kueue",
                "--kubeconfig",
                str(self.env.kubeconfig),
                "--namespace",
                self.q.namespace,
                "--abort-grace",
                "2",
                *extra,
            ],
        ).start()
        self.jobqds.append(d)
        return d

    def node(self, server: str, name: str, *extra: str, slots: int = 2) -> NodeProc:
        n = NodeProc(
            name=name, server=server, work_dir=self.tmp / f"work-{name}", slots=slots, extra=extra
        ).start()
        self.nodes.append(n)
        return n

    def stop_all(self) -> None:
        for n in self.nodes:
            n.stop()
        for d in self.jobqds:
            d.stop()

    # -- Kubernetes (synchronous, through the test environment's own small client) -------------

    @property
    def _base(self) -> str:
        return f"/apis/{API_VERSION}"

    def workloads(self) -> list[dict[str, Any]]:
        """jobqd's Workloads in the test's namespace."""
        out = self.env.api().ok(
            "GET", f"{self._base}/namespaces/{self.q.namespace}/workloads?labelSelector={MANAGED}"
        )
        return list(out.get("items") or [])

    def workload(self, name: str) -> dict[str, Any] | None:
        status, out = self.env.api().request(
            "GET", f"{self._base}/namespaces/{self.q.namespace}/workloads/{name}"
        )
        if status == 404:
            return None
        assert status == 200, (status, out)
        return dict(out)

    def create_workload(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.env.api().ok("POST", f"{self._base}/namespaces/{self.q.namespace}/workloads", body))

    def delete_workload(self, name: str) -> None:
        self.env.api().ok("DELETE", f"{self._base}/namespaces/{self.q.namespace}/workloads/{name}")

    def cluster_queue(self) -> dict[str, Any]:
        return dict(self.env.api().ok("GET", f"{self._base}/clusterqueues/{self.q.cluster_queue}"))

    def cq_usage(self) -> dict[str, str]:
        """The ClusterQueue's admitted usage per resource, summed over its flavors."""
        out: dict[str, str] = {}
        for f in (self.cluster_queue().get("status") or {}).get("flavorsUsage") or []:
            for r in f.get("resources") or []:
                out[f"{f['name']}/{r['name']}"] = str(r.get("total", "0"))
        return out

    def create_local_queue(self, name: str) -> None:
        self.env.api().ok(
            "POST",
            f"{self._base}/namespaces/{self.q.namespace}/localqueues",
            {
                "apiVersion": API_VERSION,
                "kind": "LocalQueue",
                "metadata": {"name": name},
                "spec": {"clusterQueue": self.q.cluster_queue},
            },
        )

    # -- jobs through the API --------------------------------------------------------------------

    @staticmethod
    def submit(d: Jobqd, spec: Any) -> Any:
        from jobq.v1 import job_service_pb2 as js

        return d.jobs.SubmitJob(js.SubmitJobRequest(spec=spec)).job

    @staticmethod
    def job(d: Jobqd, job_id: str) -> Any:
        from jobq.v1 import job_service_pb2 as js

        return d.jobs.GetJob(js.GetJobRequest(job_id=job_id)).job

    @staticmethod
    def tasks(d: Jobqd, job_id: str) -> list[Any]:
        from jobq.v1 import job_service_pb2 as js

        return list(d.jobs.ListTasks(js.ListTasksRequest(job_id=job_id, page_size=1000)).tasks)

    @staticmethod
    def events(d: Jobqd, job_id: str, *, wait_s: float = 1.0) -> list[Any]:
        """The job's events so far (WatchEvents replays the store, then is cut off after `wait_s`)."""
        from jobq.v1 import job_service_pb2 as js

        out: list[Any] = []
        stream = d.jobs.WatchEvents(js.WatchEventsRequest(after_sequence=0, job_ids=[job_id]), timeout=wait_s)
        try:
            for r in stream:
                out.append(r.event)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        return out

    @staticmethod
    def online(d: Jobqd) -> int:
        from jobq.v1 import node_service_pb2 as ns
        from jobq.v1 import types_pb2 as pb

        return sum(n.state == pb.NODE_STATE_ONLINE for n in d.nodes.ListNodes(ns.ListNodesRequest()).nodes)

    # -- waiting -------------------------------------------------------------------------------

    async def until(self, check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
        """Poll `check` (sync) until it returns something truthy; AssertionError after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last: Any = None
        while True:
            try:
                last = check()
                if last:
                    return last
            except AssertionError as err:
                last = err
            if loop.time() > deadline:
                logs = "\n".join(f"--- {d.log_path.name}\n{d.log_tail(25)}" for d in self.jobqds)
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or check}: last={last!r}\n{logs}"
                )
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def kueue_farm(
    kube_testenv: kte.KubeTestEnv,
    kueue_objects: Callable[..., Awaitable[KueueQueues]],
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[KueueFarm]]]:
    farms: list[KueueFarm] = []

    async def make(**kwargs: Any) -> KueueFarm:
        q = await kueue_objects(**kwargs)
        farm = KueueFarm(env=kube_testenv, q=q, tmp=tmp_path / q.namespace)
        farm.tmp.mkdir(parents=True, exist_ok=True)
        farms.append(farm)
        return farm

    yield make
    for farm in farms:
        await asyncio.to_thread(farm.stop_all)
