"""The few Kubernetes calls jobqd makes, over kubernetes-asyncio, with errors wrapped at the boundary.

Kueue's objects are custom resources, so everything goes through `CustomObjectsApi`: list (paged),
watch (a raw streaming response read line by line, so bookmarks, ERROR events and timeouts are in
our hands — see `watching.py`), create, delete, and JSON merge patches of the object and of its
`/status`. Every call carries a timeout. Failures become `KubeError` (the server answered with an
error status) or `KubeUnavailable` (no answer: refused, reset, timed out, TLS, DNS) so callers
never catch aiohttp's or the generated client's exceptions.

    KubeError                 the API server refused (status, reason, message)
    └── Gone                  410: the resourceVersion is too old — relist
    KubeUnavailable           the API server could not be reached or did not answer
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from jobqd import fastjson
from jobqd.admission.kueue.mapping import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying as is: overload, server trouble, webhook down (500), optimistic-lock conflict."""
        return self.status in (409, 429) or self.status >= 500


class Gone(KubeError):
    """410: the watch's resourceVersion is older than the server keeps (compaction, restart)."""


class KubeUnavailable(Exception):
    """The API server could not be reached or did not answer in time."""


def _from_api_exception(err: ApiException) -> KubeError:
    status = int(getattr(err, "status", 0) or 0)
    reason = str(getattr(err, "reason", "") or "")
    message = ""
    body = getattr(err, "body", None)
    if body:
        try:
            doc = json.loads(body)
            message = str(doc.get("message", ""))
            reason = str(doc.get("reason", reason))
        except (ValueError, AttributeError):
            message = str(body)[:500]
    cls = Gone if status == 410 else KubeError
    return cls(status, reason, message)


def status_error(doc: Mapping[str, Any]) -> KubeError:
    """A `Status` object (an ERROR watch event, an error response body) as an exception."""
    code = int(doc.get("code") or 0)
    cls = Gone if code == 410 else KubeError
    return cls(code, str(doc.get("reason", "")), str(doc.get("message", "")))


#: What a dropped or silent connection raises below us.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,  # ClientConnectionError, ServerDisconnectedError, ClientPayloadError, …
    asyncio.TimeoutError,
    ConnectionError,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Resource:
    """A Kueue resource type: `plural`, and the namespace for namespaced ones (None: cluster-scoped)."""

    plural: str
    namespace: str | None = None
    label_selector: str = ""

    def __str__(self) -> str:
        return f"{self.plural}" + (f" in {self.namespace}" if self.namespace else "")


async def load_api_client(kubeconfig: str) -> Any:
    """An ApiClient from a kubeconfig file, or from the in-cluster service account when empty."""
    cfg = client.Configuration()
    if kubeconfig and not await asyncio.to_thread(os.path.isfile, kubeconfig):
        raise KubeUnavailable(f"kubeconfig {kubeconfig} does not exist")
    try:
        if kubeconfig:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=cfg, persist_config=False
            )
        else:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as err:
        where = kubeconfig or "the in-cluster service account"
        raise KubeUnavailable(f"cannot load the Kubernetes configuration from {where}: {err}") from err
    api_client = client.ApiClient(configuration=cfg)
    # the API server names an Update's field manager after the user agent: "jobqd" in
    # managedFields, not the generated client's "OpenAPI-Generator"
    api_client.user_agent = USER_AGENT
    if not any(os.environ.get(name) for name in PROXY_VARIABLES):
        # kubernetes_asyncio's session has trust_env=True, which makes aiohttp look up proxy
        # variables and read ~/.netrc in a worker thread on every request — a quarter of the CPU
        # of each Workload write in a profile. Kept on when a proxy variable is set (kubectl honours
        # them too); netrc never holds Kubernetes credentials.
        session = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
        if session is not None and hasattr(session, "_trust_env"):
            session._trust_env = False
    return api_client


USER_AGENT = "jobqd"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class KubeApi:
    """Custom-object calls for Kueue's `kueue.x-k8s.io/v1beta2` resources."""

    def __init__(self, api_client: Any, *, request_timeout_s: float = 10.0) -> None:
        self._api_client = api_client
        self._co = client.CustomObjectsApi(api_client)
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout_s, sock_connect=min(5.0, request_timeout_s)
        )

    async def close(self) -> None:
        await self._api_client.close()

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as err:
            raise _from_api_exception(err) from err
        except NETWORK_ERRORS as err:
            raise KubeUnavailable(f"{type(err).__name__}: {err}") from err

    # -- reading -----------------------------------------------------------------------------

    async def list(self, res: Resource, *, page_size: int = 500) -> tuple[list[dict[str, Any]], str]:
        """All objects (paged) and the list's resourceVersion, from which to watch."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            kwargs: dict[str, Any] = {"limit": page_size}
            if token:
                kwargs["_continue"] = token
            if res.label_selector:
                kwargs["label_selector"] = res.label_selector
            if res.namespace is None:
                doc = await self._call(
                    self._co.list_cluster_custom_object, GROUP, VERSION, res.plural, **kwargs
                )
            else:
                doc = await self._call(
                    self._co.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    res.namespace,
                    res.plural,
                    **kwargs,
                )
            items.extend(doc.get("items") or [])
            md = doc.get("metadata") or {}
            token = md.get("continue") or ""
            if not token:
                return items, str(md.get("resourceVersion", ""))

    async def watch(
        self, res: Resource, *, resource_version: str, timeout_s: int, read_timeout_s: float
    ) -> AsyncIterator[dict[str, Any]]:
        """One watch request: yields raw events (`{"type", "object"}`) until the server ends it.

        `timeout_s` asks the server to end the watch (so it is renewed regularly); `read_timeout_s`
        is the socket read timeout that detects a connection gone silent (bookmarks arrive about
        once a minute, and at the end of the watch).
        """
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "resource_version": resource_version,
            "timeout_seconds": timeout_s,
            "_preload_content": False,
            "_request_timeout": aiohttp.ClientTimeout(
                total=None, sock_connect=10.0, sock_read=read_timeout_s
            ),
        }
        if res.label_selector:
            kwargs["label_selector"] = res.label_selector
        try:
            if res.namespace is None:
                resp = await self._co.list_cluster_custom_object(GROUP, VERSION, res.plural, **kwargs)
            else:
                resp = await self._co.list_namespaced_custom_object(
                    GROUP, VERSION, res.namespace, res.plural, **kwargs
                )
        except ApiException as err:
            raise _from_api_exception(err) from err
        except NETWORK_ERRORS as err:
            raise KubeUnavailable(f"{type(err).__name__}: {err}") from err
        try:
            if resp.status != 200:
                body = await resp.read()
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {
                        "code": resp.status,
                        "reason": resp.reason,
                        "message": body[:500].decode(errors="replace"),
                    }
                raise status_error({**doc, "code": doc.get("code") or resp.status})
            while True:
                try:
                    line = await resp.content.readline()
                except NETWORK_ERRORS as err:
                    raise KubeUnavailable(f"watch of {res} broke: {type(err).__name__}: {err}") from err
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = fastjson.loads(line)
                except ValueError as err:
                    raise KubeUnavailable(f"watch of {res}: undecodable event {line[:200]!r}") from err
                if isinstance(event, dict):
                    yield event
        finally:
            resp.release()

    # -- writing -----------------------------------------------------------------------------

    async def create(self, namespace: str, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            self._co.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            dict(body),
            field_validation="Strict",
        )
        return result

    async def delete(self, namespace: str, plural: str, name: str, *, uid: str = "") -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        await self._call(
            self._co.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, body=body
        )

    async def merge_patch(
        self, namespace: str, plural: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._merge_patch(
            self._co.patch_namespaced_custom_object, namespace, plural, name, patch
        )

    async def merge_patch_status(
        self, namespace: str, plural: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self._merge_patch(
            self._co.patch_namespaced_custom_object_status, namespace, plural, name, patch
        )

    async def _merge_patch(
        self, fn: Any, namespace: str, plural: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            fn, GROUP, VERSION, namespace, plural, name, dict(patch), _content_type=MERGE_PATCH
        )
        return result
