#!/usr/bin/env bash
# Deploys the whole MapProxy stack into a local Debian 13 container and prints where
# to look. `scripts/demo.sh destroy` removes the container.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
log "The demo deployment arrives with the serving stack (roles mapproxy and mapproxy_gunicorn)."
log "Until then, scripts/test.sh proves the mapproxy_venv role in Debian 13 and 12 containers."
exit 0
