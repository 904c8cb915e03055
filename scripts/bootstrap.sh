#!/usr/bin/env bash
# Create or update the virtual environment from pyproject.toml, and install the system
# packages the tests need when running as root (Debian): openssl, procps, openssh-server,
# postgresql, iproute2.
# Idempotent.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

need_apt=()
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v pgrep >/dev/null 2>&1 || need_apt+=(procps)
# A real sshd on loopback for the SSH test tier (tests/integration/test_ssh.py); ssh-keygen
# and the ssh client come with it (openssh-client).
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
# A private PostgreSQL cluster for the shared-store tier (tests/integration/test_store_pg.py,
# and the store contract on both backends, tests/integration/test_store_contract.py);
# runuser (util-linux) starts it as the postgres user.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# Network namespaces, veth pairs and tc for the network-fault tier
# (tests/integration/test_network_faults.py): ip and tc.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# The Go toolchain for the Go client's tests (tests/integration/test_go_client.py: go vet,
# go test of clients/go, and its example program against a real `floy serve`).
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
# A headless browser and its WebDriver for the dashboard test
# (tests/integration/test_dashboard.py, selenium): chromium and chromedriver.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]} with apt-get (system tools the tests use)"
    # The tests start their own sshd and PostgreSQL on 127.0.0.1; keep the packages from
    # starting system ones (a policy-rc.d answering 101 = "action forbidden", unless one
    # exists).
    cleanup=()
    trap 'rm -f "${cleanup[@]}"' EXIT
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      cleanup+=(/usr/sbin/policy-rc.d)
    fi
    # dpkg's unpacking and setting-up lines are not floy's output: kept in a log, shown
    # whole if apt-get fails.
    apt_log=$(mktemp)
    cleanup+=("$apt_log")
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             "${need_apt[@]}"; } >"$apt_log" 2>&1; then
      cat "$apt_log" >&2
      echo "bootstrap: apt-get failed (its output is above)" >&2
      exit 1
    fi
  else
    echo "bootstrap: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv"
  "$python" -m venv "$venv"
  # once, when the venv is made (Debian's pip is older); not on every update
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
echo "bootstrap: installing floy and its test dependencies into $venv"
# setuptools tells every editable install to beware of folders named like the package
# (InformationOnly, not a warning about floy): filtered by its text; anything else shows.
PYTHONWARNINGS="ignore:Editable installation" \
  "$venv/bin/python" -m pip install -q -e '.[test]'
# ansible-test (tests/ecosystem/test_ansible_test.py) bootstraps pip into its sanity test
# environments with a script it downloads from a host not every machine reaches: this
# supplies it from the pip every Python ships (scripts/ansible_test_pip.py says how).
"$venv/bin/python" scripts/ansible_test_pip.py >/dev/null
