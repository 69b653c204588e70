#!/usr/bin/env bash
# Runs every test of the collection on a Debian machine as root, installing what it
# needs first: yamllint, then every Molecule scenario, one after another, with
# ansible-lint (production profile), the plugin unit tests and ansible-test sanity
# running beside them. Exits non-zero when any step fails.
#
#   scripts/test.sh                 everything
#   scripts/test.sh SCENARIO...     only these Molecule scenarios (after the linters and unit tests)
#   P2D2_SKIP_STATIC=1 scripts/test.sh SCENARIO   only the scenarios
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Every Debian package of the run in one apt-get (redis-server: the unit tests start their
# own, the stand-in of a shared cache): the image build below runs beside the
# tool venv and the static checks, and must not race them for apt's lock.
# shellcheck disable=SC2046  # each prints one word or nothing
ensure_apt_packages debootstrap wrk redis-server $(venv_package) $(docker_package)

# The Debian images are built (debootstrap: downloads and unpacking) while the tool venv
# is created and the linters, unit tests and sanity run (the CPU's work), in a process
# group of its own that is stopped when this script ends early.
ensure_docker
images_log=$STATE/images.log
setsid bash -c 'source "$1/scripts/lib.sh"; start=$SECONDS; ensure_images
                echo "images ready in $((SECONDS - start)) s" >&2' images "$ROOT" >"$images_log" 2>&1 &
images_pid=$!
trap 'kill -- "-$images_pid" 2>/dev/null || true; [ -z "${unit_pid:-}" ] || kill -- "-$unit_pid" 2>/dev/null || true
      stop_dockerd' EXIT
static_start=$SECONDS

ensure_venv

# ansible-test needs the collection below ansible_collections/NAMESPACE/NAME (the link in
# collections/ resolves back to the checkout, which it rejects), so it runs on a copy of
# the tracked files, outside the checkout (inside, it would find the checkout's .git).
# Its HOME is in .testbed: its virtual environments stay there, and its pip bootstrap
# is the project's own (tests/sanity/get_pip.py), because the host it downloads
# get-pip.py from is not reachable from here.
run_sanity() {
  local tmp copy home=$STATE/sanity-home pyver pipver rc=0
  tmp=$(mktemp -d)
  copy=$tmp/ansible_collections/p2d2/mapproxy
  mkdir -p "$copy"
  # Tracked files and new ones that are not ignored, as they are in the work tree.
  git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' \
    | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null | tar -C "$copy" -xf -
  pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  pipver=$(python - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PY
)
  mkdir -p "$home/.ansible/test/cache"
  cp tests/sanity/get_pip.py "$home/.ansible/test/cache/get_pip_${pipver//./_}.py"
  # The requirement installs are long: the whole output goes to .testbed/sanity.log.
  (cd "$copy" && HOME=$home ansible-test sanity --color no --python "$pyver" --requirements plugins/ tests/unit/) \
    >"$STATE/sanity.log" 2>&1 || rc=$?
  grep -E '^(Running sanity test|ERROR|FATAL)' "$STATE/sanity.log" || true
  [ "$rc" -eq 0 ] || tail -n 40 "$STATE/sanity.log" >&2
  rm -rf "$tmp"
  return "$rc"
}

# ansible-lint, the plugin unit tests and ansible-test sanity run beside the Molecule
# scenarios, in a process group of their own with one pytest worker and a lower priority:
# a scenario keeps about one of the two cores busy (Ansible and the containers' Python
# starting modules), and these fill the other. Their output goes to .testbed/unit.log,
# shown when they end.
unit_log=$STATE/unit.log
unit_pid=
run_unit_tests() {
  local rc=0 start=$SECONDS
  log "ansible-lint (production profile)"
  ansible-lint --profile production || rc=1
  log "Plugin unit tests and the smoke check of the performance harness (pytest)"
  # tests/bench runs scripts/bench.py's measuring code with wrk (installed above) against a
  # local Gunicorn. worksteal hands the short tests to an idle worker while a long one
  # (mapproxy-seed's progress file needs a run of over 30 s) holds another.
  pytest --numprocesses "${P2D2_PYTEST_WORKERS:-1}" --dist worksteal || rc=1
  log "ansible-test sanity (plugins and their tests)"
  run_sanity || rc=1
  log "ansible-lint, pytest and sanity took $((SECONDS - start)) s"
  return "$rc"
}

if [ "${P2D2_SKIP_STATIC:-0}" != 1 ]; then
  log "yamllint"
  yamllint --strict .

  if [ "$#" -gt 0 ]; then
    # A few scenarios: the other checks first, pytest on every core.
    P2D2_PYTEST_WORKERS=auto run_unit_tests
  else
    log "ansible-lint, pytest and ansible-test sanity run beside the scenarios (log: .testbed/unit.log)"
    export -f log run_sanity run_unit_tests
    # At the lowest priority: they take the core the scenario leaves idle, not the
    # scenario's (at nice 0 they slowed mapproxy_backup from 411 s to 517 s; at nice 10 it
    # took 445 s, and 337 s with nothing beside it; at nice 19, 417 s: within the noise).
    STATE=$STATE setsid nice -n 19 bash -c 'cd "$1" && run_unit_tests' unit "$ROOT" >"$unit_log" 2>&1 &
    unit_pid=$!
  fi
fi

static_took=$((SECONDS - static_start))
wait "$images_pid" || { cat "$images_log" >&2; die "the Debian test images could not be built (log above)"; }
grep -v '^$' "$images_log" >&2 || true
log "The tool venv and yamllint took ${static_took} s; the images were built beside them"

if [ "$#" -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
# Containers that an aborted earlier run left behind would hold the scenarios' ports,
# and their networks would leave rules on the host that the scenario's destroy then
# removes (the ruleset check below would blame the scenario).
# Only those of the scenarios about to run: another run may be using its own.
for scenario in "${scenarios[@]}"; do
  stale=$(docker ps -aq --filter label=owner=molecule --filter "name=^p2d2-$scenario-")
  if [ -n "$stale" ]; then
    log "Removing containers that an earlier run of $scenario left behind"
    docker rm -f $stale >/dev/null
  fi
  if docker network ls --format '{{.Name}}' | grep -qx "p2d2-$scenario"; then
    log "Removing the network that an earlier run of $scenario left behind"
    docker network rm "p2d2-$scenario" >/dev/null
  fi
done

# The host's ruleset, without comments and counters. A scenario with its own network
# adds rules to the host while the network exists and must leave the host as it found it.
host_rules() {
  { iptables-save; ip6tables-save; if command -v nft >/dev/null; then nft -s list ruleset; fi; } 2>&1 \
    | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//g'
}

# Molecule's output passes through; the seconds of each of its actions (create,
# converge, verify, ...) go to the file $1, for the scenario's summary line.
time_actions() {
  awk -v out="$1" '
    function note() { if (action != "") { took = took sep action " " (systime() - start); sep = ", " } }
    { print; fflush(); line = $0; gsub(/\033\[[0-9;]*m/, "", line) }
    line ~ /➜ [a-z_]+: Executing/ {
      note(); action = line; sub(/.*➜ /, "", action); sub(/:.*/, "", action); start = systime()
    }
    END { note(); print took > out }'
}

failed=()
for scenario in "${scenarios[@]}"; do
  log "Molecule scenario $scenario"
  start=$SECONDS
  rules_before=$(host_rules)
  rc=0
  molecule test -s "$scenario" 2>&1 | time_actions "$STATE/actions" || rc=$?
  if [ "$rc" -eq 0 ]; then
    if [ "$(host_rules)" = "$rules_before" ]; then
      log "Scenario $scenario passed in $((SECONDS - start)) s ($(cat "$STATE/actions")); the host's ruleset is as before"
    else
      failed+=("$scenario")
      diff <(printf '%s\n' "$rules_before") <(host_rules) >&2 || true
      log "Scenario $scenario changed the host's ruleset"
    fi
  else
    failed+=("$scenario")
    log "Scenario $scenario FAILED after $((SECONDS - start)) s ($(cat "$STATE/actions"))"
  fi
done
unit_failed=
if [ -n "$unit_pid" ]; then
  wait "$unit_pid" || unit_failed=1
  unit_pid=
  cat "$unit_log"
fi
[ "${#failed[@]}" -eq 0 ] || die "Molecule scenarios failed: ${failed[*]}${unit_failed:+; and ansible-lint, pytest or sanity failed (above)}"
[ -z "$unit_failed" ] || die "ansible-lint, pytest or ansible-test sanity failed (above)"
log "All tests passed"
