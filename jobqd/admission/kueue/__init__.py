"""Kueue admission (`--admission kueue`, DESIGN §8): jobqd owns one Kueue Workload per job admission
cycle and follows it through watch streams.

Modules, from pure to effectful:

* `mapping` — Workload ↔ admission phase, the Workload jobqd builds, the owner's status patches,
  LocalQueue/ClusterQueue → queue view. Pure; unit-tested on real Workload shapes.
* `reconcile` — what to write for one job, as a pure plan.
* `kubeapi` — the few Kubernetes calls, errors wrapped at the boundary.
* `watching` — list-then-watch in three layers (forever / list+watch / one stream) into caches.
* `owner` — carries out one planned write.
* `backend` — `KueueAdmission`: the engine's Admission protocol, wiring the above together.
"""
