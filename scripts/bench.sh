#!/usr/bin/env bash
# The performance harness: deploys the stack into its own Debian 13 container
# (p2d2-bench, host network, MapProxy on 127.0.0.1:18880, the stand-in upstream on
# 18891, a static nginx on 18881), measures on loopback with wrk, prints the machine
# and one markdown table, and removes the container. As root on a Debian machine.
#
#   scripts/bench.sh                 the whole harness (about 12 minutes)
#   scripts/bench.sh --smoke         a few seconds per cell, one round: does it work?
#   scripts/bench.sh --sweep         Gunicorn variants on cached tiles (the tuning)
#   scripts/bench.sh --profile 20    also profile a Gunicorn worker under load with py-spy
#   scripts/bench.sh --measure store-cleanup
#                                    row 8 alone: MapProxy's cleanup against the collection's on an
#                                    S3 and a Redis store, on this machine, no container (.testbed/bench/store-cleanup.md)
#   scripts/bench.sh --help          every option (durations, rounds, --keep, --reuse)
#
# The result is also written to .testbed/bench/result.md (and .json). Not a test:
# timings on a shared machine are indicative; see docs/performance.md.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# The measures asked for (--measure a,b or --measure=a,b): store-cleanup alone needs no container.
measures= prev=
for arg in "$@"; do
  case $arg in --measure=*) measures=${arg#--measure=} ;; esac
  [ "$prev" != --measure ] || measures=$arg
  prev=$arg
done
case ",$measures," in *,store-cleanup,*) ensure_apt_packages redis-server ;; esac
ensure_venv
if [ "$measures" != store-cleanup ]; then
  ensure_apt_packages wrk
  # An engine started here stops when the harness ends, unless --keep leaves the container.
  keep=
  for arg in "$@"; do [ "$arg" != --keep ] || keep=keep; done
  ensure_docker ${keep:+"$keep"}
  ensure_images
fi

# py-spy for --profile, in its own venv on this machine: it attaches to the worker
# from here (the container has no CAP_SYS_PTRACE).
for arg in "$@"; do
  if [ "$arg" = --profile ] && [ ! -x "$STATE/py-spy/bin/py-spy" ]; then
    log "Installing py-spy into .testbed/py-spy"
    python3 -m venv --clear "$STATE/py-spy"
    "$STATE/py-spy/bin/pip" install -q py-spy >"$STATE/py-spy.log" 2>&1 \
      || { tail -n 20 "$STATE/py-spy.log" >&2; die "installing py-spy failed (log: .testbed/py-spy.log)"; }
  fi
done

P2D2_CONTAINER_ARGS=$(printf '%s\n' "${SYSTEMD_CONTAINER_ARGS[@]}") \
  "$VENV/bin/python" scripts/bench.py "$@"
