"""``make demo``: a real rolling deploy of the sample ``hello`` service on this machine.

It builds two versions of the package, serves them over HTTPS with a CA made for the demo
(verified TLS), registers three local instances, deploys 1.0.0 to all of them, then 2.0.0
in batches of one with the live display, and shows which version each instance runs.
Every step is a real ``floy`` command, printed before it runs. State stays in ``./.floy``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from sample.packages import build_hello_package, free_port, sha256_file, stop_apps
from sample.pkgserver import PackageServer, make_pki

SERVICE = "hello"
INSTANCES = ("hello-1", "hello-2", "hello-3")


def floy(*args: str, env: dict[str, str], check: bool = True) -> int:
    """Run and echo one floy command."""
    print(f"\n$ floy {shlex.join(args)}", flush=True)
    code = subprocess.call([str(Path(sys.executable).with_name("floy")), *args], env=env)
    if check and code != 0:
        raise SystemExit(f"demo: `floy {shlex.join(args)}` exited {code}")
    return code


def prepare(home: Path) -> tuple[Path, Path]:
    """Reset the demo's workspace; returns (workspace, instance root)."""
    work = home / "demo"
    root = work / "instances"
    if root.exists():
        stop_apps(root)
    shutil.rmtree(work, ignore_errors=True)
    (work / "packages").mkdir(parents=True)
    root.mkdir(parents=True)
    return work, root


def write_operator_files(home: Path, work: Path, root: Path, ca_bundle: Path) -> None:
    """The operator's side: an inventory dir with group_vars, and floy's config.yml."""
    repo = Path(__file__).resolve().parent.parent
    inventory = work / "inventory"
    shutil.copytree(repo / "inventories" / "local", inventory)
    all_vars = inventory / "group_vars" / "all.yml"
    data = yaml.safe_load(all_vars.read_text(encoding="utf-8")) or {}
    data["floy_root"] = str(root)
    all_vars.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    config = {"inventory_dir": str(inventory), "ca_bundle": str(ca_bundle)}
    (home / "config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


def show_health(ports: dict[str, int]) -> None:
    """What each instance answers on its health path right now."""
    print("\nwhat the instances answer on /health:")
    for instance_id, port in ports.items():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
                body = json.loads(resp.read())
            print(f"  {instance_id}  127.0.0.1:{port}  version {body.get('version')}")
        except OSError as exc:
            print(f"  {instance_id}  127.0.0.1:{port}  not answering ({exc})")


def main() -> int:
    """Run the demo end to end."""
    started = time.monotonic()
    home = Path(os.environ.get("FLOY_HOME", ".floy")).absolute()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    work, root = prepare(home)
    print(f"floy demo: state in {home}, instances under {root}")

    pki = make_pki(work / "pki")
    packages = {v: build_hello_package(work / "packages", v) for v in ("1.0.0", "2.0.0")}
    server = PackageServer.start(work / "packages", pki)
    print(f"package server: {server.base_url} (certificate chain from a demo CA: {pki.ca_bundle})")
    write_operator_files(home, work, root, pki.ca_bundle)
    env = dict(os.environ, FLOY_HOME=str(home))
    ports = {instance_id: free_port() for instance_id in INSTANCES}
    keep = os.environ.get("FLOY_DEMO_KEEP_RUNNING") == "1"
    try:
        for instance_id, port in ports.items():
            floy("instances", "add", instance_id, "--service", SERVICE, "--host", "127.0.0.1",
                 "--port", str(port), "--meta", "zone=demo", "--replace", env=env)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for version, batch in (("1.0.0", "3"), ("2.0.0", "1")):
            pkg = packages[version]
            floy("deploy", SERVICE, version, "--url", server.url(pkg.name),
                 "--sha256", sha256_file(pkg), "--batch-size", batch,
                 "--deploy-id", f"demo-{version}-{stamp}", env=env)
        floy("versions", SERVICE, env=env)
        show_health(ports)
        floy("instances", "list", SERVICE, env=env)
    finally:
        server.stop()
        if not keep:
            stop_apps(root)
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s. Go on with:\n"
          f"  .venv/bin/floy status demo-2.0.0-{stamp}\n"
          f"  .venv/bin/floy versions {SERVICE} --json\n"
          + ("" if keep else "(the demo stopped the hello processes; set "
             "FLOY_DEMO_KEEP_RUNNING=1 to leave them serving)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
