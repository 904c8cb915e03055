"""floy over HTTP: the API, its auth, and the dashboard (thin, over orchestrator.service)."""
