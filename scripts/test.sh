#!/usr/bin/env bash
# Runs every test of the collection on a Debian machine as root, installing what it
# needs first: yamllint, ansible-lint (production profile), the plugin unit tests and
# every Molecule scenario, one after another. Exits non-zero when any step fails.
#
#   scripts/test.sh                 everything
#   scripts/test.sh SCENARIO...     only these Molecule scenarios (after the linters and unit tests)
#   P2D2_SKIP_STATIC=1 scripts/test.sh SCENARIO   only the scenarios
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_venv

if [ "${P2D2_SKIP_STATIC:-0}" != 1 ]; then
  log "yamllint"
  yamllint --strict .

  log "ansible-lint (production profile)"
  ansible-lint --profile production

  log "Plugin unit tests (pytest)"
  pytest
fi

ensure_docker
ensure_images

if [ "$#" -gt 0 ]; then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
# Containers that an aborted earlier run left behind would hold the scenarios' ports.
stale=$(docker ps -aq --filter label=owner=molecule --filter name='^p2d2-')
if [ -n "$stale" ]; then
  log "Removing containers left by an earlier run"
  docker rm -f $stale >/dev/null
fi

failed=()
for scenario in "${scenarios[@]}"; do
  log "Molecule scenario $scenario"
  start=$SECONDS
  if molecule test -s "$scenario"; then
    log "Scenario $scenario passed in $((SECONDS - start)) s"
  else
    failed+=("$scenario")
    log "Scenario $scenario FAILED after $((SECONDS - start)) s"
  fi
done
[ "${#failed[@]}" -eq 0 ] || die "Molecule scenarios failed: ${failed[*]}"
log "All tests passed"
