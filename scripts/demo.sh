#!/usr/bin/env bash
# Deploys the whole MapProxy stack (playbooks/site.yml, with stand-in upstreams) into
# local Debian 13 containers, and prints where to look.
#
#   scripts/demo.sh            create or update the container `mapproxy` (named like the
#                              LXC host) and deploy
#   scripts/demo.sh cluster    create or update two MapProxy hosts sharing an S3 and a Redis
#                              cache, HAProxy in front of them and the stores' stand-ins, on a
#                              Docker network of their own (docs/scaling.md), and deploy
#   scripts/demo.sh destroy    remove the demo's containers (both kinds) and its network
#
# P2D2_DEMO_PORT (default 8080) is the host port the single container's MapProxy answers
# on: that container shares the host's network. The cluster answers on its balancer's
# address, 172.29.70.10 (P2D2_DEMO_SUBNET, default 172.29.70.0/24, moves it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

NAME=mapproxy
PORT=${P2D2_DEMO_PORT:-8080}
IMAGE=$P2D2_IMAGE_TRIXIE
CLUSTER_NET=p2d2-demo
CLUSTER_SUBNET=${P2D2_DEMO_SUBNET:-172.29.70.0/24}
CLUSTER=(mapproxy-stores mapproxy1 mapproxy2 mapproxy-lb)

# Wait until systemd in a container has started.
wait_systemd() {
  local state
  for _ in $(seq 1 30); do
    state=$(docker exec "$1" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) return 0 ;; esac
    sleep 1
  done
  die "systemd did not start in the container $1 (state: ${state:-none}); see: docker logs $1"
}

# Every URL must answer 200 now.
check_urls() {
  local url code
  for url in "$@"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url") || true
    [ "$code" = 200 ] || die "$url answered $code; see: docker exec ${where:-$NAME} journalctl -n 50 --no-pager"
  done
}

case "${1:-up}" in
  destroy)
    removed=
    if docker info >/dev/null 2>&1; then
      for container in "$NAME" "${CLUSTER[@]}"; do
        if docker container inspect "$container" >/dev/null 2>&1; then
          docker rm -f "$container" >/dev/null
          log "Removed the container $container"
          removed=1
        fi
      done
      if docker network inspect "$CLUSTER_NET" >/dev/null 2>&1; then
        docker network rm "$CLUSTER_NET" >/dev/null
        log "Removed the network $CLUSTER_NET"
        removed=1
      fi
    fi
    [ -n "$removed" ] || log "No demo container to remove"
    exit 0 ;;
  up|cluster) ;;
  *) die "usage: scripts/demo.sh [cluster|destroy]" ;;
esac

if [ "${1:-up}" = cluster ]; then
  [[ "$CLUSTER_SUBNET" =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] \
    || die "P2D2_DEMO_SUBNET is '$CLUSTER_SUBNET': give a /24 such as 172.29.70.0/24"
  LB_ADDRESS=${BASH_REMATCH[1]}.10
  ensure_venv
  ensure_docker keep
  ensure_image trixie
  if ! docker network inspect "$CLUSTER_NET" >/dev/null 2>&1; then
    docker network create --subnet "$CLUSTER_SUBNET" "$CLUSTER_NET" >/dev/null \
      || die "cannot create the Docker network $CLUSTER_NET on $CLUSTER_SUBNET: is that subnet taken (docker network ls)? Set P2D2_DEMO_SUBNET to another /24"
  fi
  created=
  for container in "${CLUSTER[@]}"; do
    if docker container inspect "$container" >/dev/null 2>&1; then
      [ "$(docker container inspect -f '{{.State.Running}}' "$container")" = true ] || docker start "$container" >/dev/null
      continue
    fi
    extra=()
    case $container in
      mapproxy-lb) extra=(--ip "$LB_ADDRESS") ;;
      # botocore takes no '_' in an endpoint's host name: the hosts reach the stores as 'stores'.
      mapproxy-stores) extra=(--network-alias stores) ;;
    esac
    created=1
    log "Creating the Debian 13 container $container"
    docker run -d --name "$container" --hostname "$container" "${SYSTEMD_CONTAINER_BASE_ARGS[@]}" \
      --network "$CLUSTER_NET" "${extra[@]}" "$IMAGE" >/dev/null
  done
  for container in "${CLUSTER[@]}"; do wait_systemd "$container"; done

  # New containers serve nothing yet: deploy the MapProxy hosts at once. Later runs roll, one
  # host at a time behind the balancer (site.yml's default with balancers).
  batch=()
  [ -z "$created" ] || batch=(-e mapproxy_rolling_batch=100%)
  log "Deploying playbooks/demo_cluster.yml (stand-in stores and upstreams, then playbooks/site.yml)"
  ansible-playbook -i inventory/demo_cluster playbooks/demo_cluster.yml -e "p2d2_demo_lb_address=$LB_ADDRESS" "${batch[@]}"

  base="http://$LB_ADDRESS"
  host1=$(docker container inspect -f "{{(index .NetworkSettings.Networks \"$CLUSTER_NET\").IPAddress}}" mapproxy1)
  where=mapproxy-lb check_urls "$base/demo/" "$base/wmts/osm/webmercator/6/33/21.png" \
    "$base/service?SERVICE=WMS&REQUEST=GetCapabilities" "$base:8404/"
  where=mapproxy1 check_urls "http://$host1:8080/wmts/osm/webmercator/6/33/21.png"
  cat <<MSG

Two MapProxy hosts (mapproxy1, mapproxy2) share the cache osm_cache in S3 and geoserver_cache
in Redis (stand-ins on mapproxy-stores: moto's S3 server and redis-server), behind HAProxy on
mapproxy-lb, all deployed by playbooks/site.yml (docs/scaling.md, docs/shared-cache.md).

  Through the balancer:  $base/demo/
  Leaflet tile URL:      $base/wmts/osm/webmercator/{z}/{x}/{y}.png
  WMS capabilities:      $base/service?SERVICE=WMS&REQUEST=GetCapabilities
  HAProxy's state:       $base:8404/   (each host, its checks, its requests)
  One host directly:     http://$host1:8080/demo/   (mapproxy1's front door)

Each answered 200 just now. To look around and try things:
  docker exec mapproxy1 systemctl list-timers 'mapproxy-*'   (the seeding leader; mapproxy2 has no jobs of the shared caches)
  docker exec mapproxy1 tail /var/log/mapproxy/nginx-access.log   (which tiles reached this host)
  docker stop mapproxy2   (HAProxy takes it out within 6 s; the tiles keep coming from mapproxy1)
  ansible-playbook -i inventory/demo_cluster playbooks/site.yml -e p2d2_demo_lb_address=$LB_ADDRESS
                         (a change rolls one host at a time)
Run scripts/demo.sh cluster again to re-apply (and start stopped containers), scripts/demo.sh destroy to remove it all.
MSG
  exit 0
fi

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
wait_systemd "$NAME"

log "Deploying playbooks/demo.yml (stand-in upstreams, then playbooks/site.yml)"
ansible-playbook -i inventory/demo playbooks/demo.yml -e "p2d2_demo_port=$PORT"

base="http://127.0.0.1:$PORT"
urls=(
  "$base/demo/"
  "$base/wmts/osm/webmercator/6/33/21.png"
  "$base/service?SERVICE=WMS&REQUEST=GetCapabilities"
)
check_urls "${urls[@]}"

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
