"""The test environment works: real Kueue admits a plain v1beta2 Workload, and says why it cannot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"

pytestmark = pytest.mark.asyncio


def workload(
    name: str, queue: str, *, cpu: str = "1", priority_class: str = "low", priority: int = 100
) -> dict[str, Any]:
    return {
        "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
        "kind": "Workload",
        "metadata": {"name": name},
        "spec": {
            "queueName": queue,
            "podSets": [
                {
                    "name": "tasks",
                    "count": 1,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "task",
                                    "image": "jobq.invalid/task",
                                    "resources": {"requests": {"cpu": cpu}},
                                }
                            ],
                        }
                    },
                }
            ],
            # Kueue does not fill spec.priority for plain Workloads; CEL requires it with the ref.
            "priorityClassRef": {
                "group": KUEUE_GROUP,
                "kind": "WorkloadPriorityClass",
                "name": priority_class,
            },
            "priority": priority,
        },
    }


def condition(wl: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (wl.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


async def wait_for_workload(co: Any, ns: str, name: str, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        wl: dict[str, Any] = await co.get_namespaced_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, ns, "workloads", name
        )
        if pred(wl):
            return wl
        if loop.time() > deadline:
            status = wl.get("status")
            raise AssertionError(
                f"Workload {ns}/{name} not in the expected state after {timeout} s: {status}"
            )
        await asyncio.sleep(0.05)


async def test_plain_workload_is_admitted(kube_api: Any, kueue_namespace: Any) -> None:
    from kubernetes_asyncio import client

    co = client.CustomObjectsApi(kube_api)
    ns = kueue_namespace.namespace
    await co.create_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, ns, "workloads", workload("jobq-1-1", kueue_namespace.local_queue)
    )

    def admitted(wl: dict[str, Any]) -> bool:
        qr, ad = condition(wl, "QuotaReserved"), condition(wl, "Admitted")
        return bool(qr and qr["status"] == "True" and ad and ad["status"] == "True")

    wl = await wait_for_workload(co, ns, "jobq-1-1", admitted)
    assignments = wl["status"]["admission"]["podSetAssignments"]
    assert wl["status"]["admission"]["clusterQueue"] == kueue_namespace.cluster_queue
    assert [a["name"] for a in assignments] == ["tasks"]
    assert assignments[0]["flavors"] == {"cpu": kueue_namespace.flavors[0]}


async def test_workload_for_missing_local_queue_is_inadmissible(kube_api: Any, kueue_namespace: Any) -> None:
    from kubernetes_asyncio import client

    co = client.CustomObjectsApi(kube_api)
    ns = kueue_namespace.namespace
    await co.create_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, ns, "workloads", workload("jobq-2-1", "lq-missing")
    )

    def inadmissible(wl: dict[str, Any]) -> bool:
        qr = condition(wl, "QuotaReserved")
        return bool(qr and qr["status"] == "False" and qr.get("reason") == "Inadmissible")

    wl = await wait_for_workload(co, ns, "jobq-2-1", inadmissible)
    assert "lq-missing" in condition(wl, "QuotaReserved")["message"]  # type: ignore[index]
    assert condition(wl, "Admitted") is None or condition(wl, "Admitted")["status"] == "False"  # type: ignore[index]


async def test_restart_apiserver_keeps_admissions(
    kube_testenv: Any, kube_api: Any, kueue_namespace: Any
) -> None:
    """restart_apiserver() (blocking: run it in a thread) keeps etcd's data; Kueue admits again after it."""
    from kubernetes_asyncio import client

    co = client.CustomObjectsApi(kube_api)
    ns, lq = kueue_namespace.namespace, kueue_namespace.local_queue

    def admitted(wl: dict[str, Any]) -> bool:
        ad = condition(wl, "Admitted")
        return bool(ad and ad["status"] == "True")

    await co.create_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, ns, "workloads", workload("jobq-3-1", lq)
    )
    await wait_for_workload(co, ns, "jobq-3-1", admitted)
    await asyncio.to_thread(kube_testenv.restart_apiserver)
    await wait_for_workload(co, ns, "jobq-3-1", admitted)  # survived
    await co.create_namespaced_custom_object(
        KUEUE_GROUP, KUEUE_VERSION, ns, "workloads", workload("jobq-4-1", lq)
    )
    await wait_for_workload(co, ns, "jobq-4-1", admitted)
