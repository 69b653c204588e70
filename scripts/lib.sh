# shellcheck shell=bash
# Shared set-up of the project's scripts: the tool venv, the Docker engine and the
# Debian test images. Sourced by scripts/test.sh and scripts/demo.sh; everything here
# is idempotent, so a second run only checks and skips.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/.testbed
VENV=$ROOT/.venv
IMAGE_REPO=${P2D2_IMAGE_REPO:-p2d2-mapproxy/debian}
# Bump when the image recipe below changes: the tag then misses and images are rebuilt.
IMAGE_RECIPE=2
# The images' names, read by the Molecule scenarios, the demo and the benchmark.
export P2D2_IMAGE_TRIXIE=$IMAGE_REPO:trixie-r$IMAGE_RECIPE P2D2_IMAGE_BOOKWORM=$IMAGE_REPO:bookworm-r$IMAGE_RECIPE
DEBIAN_MIRROR=${P2D2_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# As bare as a minimal Debian LXC: minbase, Python for Ansible, systemd as init (with
# dbus, which systemd recommends). Nothing a role runs (sudo, logrotate, nginx, nftables,
# python3-venv, python3-apt, curl, procps, iproute2) is here, so a role that forgets to
# install a tool fails its scenario. ca-certificates only carries the machine's extra
# CAs into the image (an intercepting proxy), as an operator's host carries theirs.
IMAGE_PACKAGES=python3,systemd,systemd-sysv,dbus,ca-certificates

mkdir -p "$STATE"
export ANSIBLE_HOME=$STATE/ansible
export ANSIBLE_CONFIG=$ROOT/ansible.cfg
export MOLECULE_GLOB='molecule/*/molecule.yml'
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: the test bed installs packages and starts the Docker engine"

# Install Debian packages that are missing, without letting their maintainer scripts
# start any service (the engine is started below, only when needed, and stopped after).
ensure_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "Installing Debian packages: ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && own_policy=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  # Removed on failure too: a policy-rc.d left behind would keep every service from starting.
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get could not install ${missing[*]}"
}

# The Debian package that ensure_venv and ensure_docker need, when this machine lacks it
# (printed, empty when present): test.sh installs them up front with the rest.
venv_package() { python3 -c 'import ensurepip' 2>/dev/null || echo python3-venv; }
docker_package() { command -v dockerd >/dev/null || echo docker.io; }

# The project's tool venv: pinned Ansible, Molecule, linters, pytest and MapProxy.
ensure_venv() {
  local req=$ROOT/tests/requirements.txt stamp=$VENV/.requirements.sha256 sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    export PATH=$VENV/bin:$PATH
    return 0
  fi
  log "Creating the tool venv in .venv"
  local pkg
  pkg=$(venv_package)
  [ -z "$pkg" ] || ensure_apt_packages "$pkg"
  python3 -m venv --clear "$VENV"
  if ! { "$VENV/bin/pip" install --upgrade pip && "$VENV/bin/pip" install -r "$req"; } >"$STATE/pip.log" 2>&1; then
    tail -n 30 "$STATE/pip.log" >&2
    die "installing the tools of tests/requirements.txt failed (log: .testbed/pip.log)"
  fi
  echo "$sum" >"$stamp"
  export PATH=$VENV/bin:$PATH
}

DOCKERD_STARTED=0
DOCKERD_PID=
stop_dockerd() {
  [ "$DOCKERD_STARTED" -eq 1 ] || return 0
  local pid=$DOCKERD_PID
  # Only the dockerd this run started: never a PID that a stale file names.
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 0
  log "Stopping the Docker engine this run started (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  DOCKERD_STARTED=0
}

# Start dockerd only when no engine answers; stop only the one started here, when the
# script ends, unless called as `ensure_docker keep` (the demo's container needs it).
ensure_docker() {
  local pkg
  pkg=$(docker_package)
  [ -z "$pkg" ] || ensure_apt_packages "$pkg"
  if docker info >/dev/null 2>&1; then return 0; fi
  log "Starting the Docker engine (log: .testbed/dockerd.log)"
  setsid dockerd --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 < /dev/null &
  DOCKERD_PID=$!
  if [ "${1:-}" != keep ]; then
    DOCKERD_STARTED=1
    trap stop_dockerd EXIT
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  tail -n 20 "$STATE/dockerd.log" >&2
  die "the Docker engine did not answer within 60 s"
}

# Build a Debian image with debootstrap (there is no registry to pull from) unless
# the tag exists. Packages that roles install themselves are left out on purpose.
ensure_image() {
  local suite=$1 tag="$IMAGE_REPO:$1-r$IMAGE_RECIPE" rootfs
  docker image inspect "$tag" >/dev/null 2>&1 && return 0
  ensure_apt_packages debootstrap
  log "Building $tag with debootstrap"
  rootfs=$(mktemp -d "$STATE/rootfs-$suite.XXXXXX")
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" "$suite" "$rootfs" "$DEBIAN_MIRROR" \
    >"$STATE/debootstrap-$suite.log" 2>&1 || { tail -n 20 "$STATE/debootstrap-$suite.log" >&2; die "debootstrap $suite failed"; }
  # Trust the same extra CAs as the machine (an intercepting proxy, a corporate CA).
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # Empty, epoch-dated apt lists: apt's cache_valid_time must see a stale cache.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  mkdir -p "$rootfs/var/lib/apt/lists/partial"
  touch -d @0 "$rootfs/var/lib/apt/lists"
  tar -C "$rootfs" -c . | docker import -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' - "$tag" >/dev/null
  rm -rf "$rootfs"
}

ensure_images() {
  ensure_image trixie
  ensure_image bookworm
}

# Container settings for systemd as PID 1 on this kind of machine; the Molecule base
# create step (molecule/resources/create.yml) gives its platforms the same.
# SYSTEMD_CONTAINER_BASE_ARGS without a network; SYSTEMD_CONTAINER_ARGS on the host's.
SYSTEMD_CONTAINER_BASE_ARGS=(
  --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --cgroupns host --volume /sys/fs/cgroup:/sys/fs/cgroup:rw
  --tmpfs /run --tmpfs /run/lock
)
SYSTEMD_CONTAINER_ARGS=("${SYSTEMD_CONTAINER_BASE_ARGS[@]}" --network host)
