#!/usr/bin/env bash
# Deploys the whole MapProxy stack (playbooks/site.yml, with stand-in upstreams) into a
# local Debian 13 container named like the LXC host, and prints where to look.
#
#   scripts/demo.sh            create or update the container `mapproxy` and deploy
#   scripts/demo.sh destroy    remove the container
#
# P2D2_DEMO_PORT (default 8080) is the host port MapProxy answers on: the container
# shares the host's network.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

NAME=mapproxy
PORT=${P2D2_DEMO_PORT:-8080}
IMAGE=$P2D2_IMAGE_TRIXIE

case "${1:-up}" in
  destroy)
    if docker info >/dev/null 2>&1 && docker container inspect "$NAME" >/dev/null 2>&1; then
      docker rm -f "$NAME" >/dev/null
      log "Removed the container $NAME"
    else
      log "No container $NAME to remove"
    fi
    exit 0 ;;
  up) ;;
  *) die "usage: scripts/demo.sh [destroy]" ;;
esac

[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ "$PORT" -le 65535 ] \
  || die "P2D2_DEMO_PORT is '$PORT': give a port from 1024 to 65535"

ensure_venv
ensure_docker keep
ensure_image trixie

if [ "$(docker container inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" != true ]; then
  if ss -ltnH "sport = :$PORT" 2>/dev/null | grep -q .; then
    die "port $PORT is taken on this machine: free it or set P2D2_DEMO_PORT to another port"
  fi
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  log "Creating the Debian 13 container $NAME"
  docker run -d --name "$NAME" --hostname "$NAME" "${SYSTEMD_CONTAINER_ARGS[@]}" "$IMAGE" >/dev/null
fi
for _ in $(seq 1 30); do
  state=$(docker exec "$NAME" systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 1
done

log "Deploying playbooks/demo.yml (stand-in upstreams, then playbooks/site.yml)"
ansible-playbook -i inventory/demo playbooks/demo.yml -e "p2d2_demo_port=$PORT"

base="http://127.0.0.1:$PORT"
urls=(
  "$base/demo/"
  "$base/wmts/osm/webmercator/6/33/21.png"
  "$base/service?SERVICE=WMS&REQUEST=GetCapabilities"
)
for url in "${urls[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url") || true
  [ "$code" = 200 ] || die "$url answered $code; see: docker exec $NAME journalctl -u mapproxy"
done

cat <<MSG

MapProxy runs in the container '$NAME' (Debian 13), deployed by playbooks/site.yml,
behind nginx, which answers cached tiles from disk (docs/fast-path.md).

  Demo page:          $base/demo/
  Leaflet tile URL:   $base/wmts/osm/webmercator/{z}/{x}/{y}.png
                      (e.g. $base/wmts/osm/webmercator/6/33/21.png)
  WMS capabilities:   $base/service?SERVICE=WMS&REQUEST=GetCapabilities

Each answered 200 just now. Inside the container:
  docker exec -it $NAME bash
  docker exec $NAME journalctl -u mapproxy --no-pager -n 50
  docker exec $NAME tail /var/log/mapproxy/nginx-access.log   (fastpath=hit: a cached tile from disk)
  docker exec $NAME tail /var/log/mapproxy/access.log         (Gunicorn: what reached MapProxy)
  docker exec $NAME systemctl list-timers 'mapproxy-*'    (seeding, cleanup, size limits)
The upstreams are stand-ins (MapProxy's debug source on 127.0.0.1:8091).
Run scripts/demo.sh again to re-apply (it changes nothing), scripts/demo.sh destroy to remove it.
MSG
