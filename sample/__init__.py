"""Sample application, packages and HTTPS package server for floy's demo and tests.

Nothing here is part of floy itself: it stands in for a real service so that
the playbooks and the orchestrator can be exercised end to end on loopback.
"""
