"""The chaos soak: deployments, cancels and rollbacks under SIGKILL, ENOSPC and DB restarts."""
