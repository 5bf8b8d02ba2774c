"""Admission backends: `local` (embedded, the default) and `kueue` (Kubernetes + Kueue)."""
