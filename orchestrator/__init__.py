"""floy: an Ansible-backed release orchestrator."""
