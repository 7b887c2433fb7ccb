#!/bin/sh
# System tools some checks of `make test` need, from Debian where they are missing:
#   promtool  (package prometheus) - checks and unit-tests deploy/prometheus's alert rules
#   chromium  (package chromium)    - the headless browser of the console's browser test
# Idempotent and quiet: does nothing when the commands are on the PATH. Installs only as root
# with apt-get; elsewhere it says what to install and leaves it to you (the tests then skip,
# naming the package). It never starts or enables the Prometheus daemon the package ships.
set -eu

missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing$missing (needs root and apt-get); install them for the" \
         "promtool and browser checks of make test, which skip without them" >&2
    exit 0
fi

# A policy-rc.d answering 101 keeps the package's postinst from starting the daemon; ours only
# for the length of the install, and only if the machine has none of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
apt_install() {
    # shellcheck disable=SC2086  # $missing is a list of package names
    apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1
}
# A machine whose package lists are stale or absent gets them once, then a second try.
if ! apt_install && ! { apt-get update -qq >"$log" 2>&1 && apt_install; }; then
    cat "$log" >&2
    rm -f "$log"
    echo "error: apt-get could not install$missing" >&2
    exit 1
fi
rm -f "$log"

# postinst enables the unit on systemd machines even when it may not start it: undo that.
case " $missing " in *" prometheus "*)
    if [ -d /run/systemd/system ]; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
esac
