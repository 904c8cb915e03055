"""The only package that knows ansible-runner and the playbooks: baking a run into a plan
(:mod:`.plan`, :mod:`.inventory`), executing it (:mod:`.runner`), reading hosts
(:mod:`.probe`), importing inventories (:mod:`.importer`) and finding a run's processes on
this machine (:mod:`.processes`)."""
