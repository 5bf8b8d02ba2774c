"""The SDK's modules: clients (``aio``, ``sync``) and what both share.

The public names are re-exported by :mod:`jobq` (``jobq.AsyncClient``, ``jobq.Client``); this
package itself stays import-light so that :mod:`jobq.spec` can use :mod:`jobq.sdk.names` without
pulling in the clients.
"""
