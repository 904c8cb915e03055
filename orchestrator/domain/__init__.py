"""floy's domain, pure and tested from data: records (:mod:`.records`), validation,
batching, the event fold (:mod:`.events`) and the rollback rules. No I/O: nothing here
imports the database, Ansible or the command line."""
