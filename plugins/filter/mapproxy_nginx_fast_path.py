# Copyright: p2d2 maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Choose the tile URLs that nginx may answer from MapProxy's file caches."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Caches in a shared store (MapProxy's cache types), which nginx cannot read: the probe's list.
from ansible_collections.p2d2.mapproxy.plugins.module_utils.mapproxy_probe import STORE_TYPES

DOCUMENTATION = r"""
name: mapproxy_nginx_fast_path
short_description: Choose the tile URLs nginx may answer straight from MapProxy's file caches
description:
  - Used by the role p2d2.mapproxy.mapproxy_nginx. Reads the answer of the module
    p2d2.mapproxy.mapproxy_config_info for the live C(mapproxy.yaml), in which MapProxy itself, in the
    host's venv, has resolved every cache's type, layout, format and directory grid by grid and every grid's
    SRS and origin. Returns, for every layer whose tiles come from one file cache with C(directory_layout)
    C(tms) on a grid with origin C(nw), the restful WMTS URL and the C(/tiles) XYZ URL as nginx location
    regexes with the file each maps to.
  - With O(store_caches), also the same URLs of layers whose tiles come from one C(s3) or C(redis) cache
    (a shared store nginx cannot read) - such a route has C(store) true and no file, and nginx keeps a bounded
    copy of MapProxy's answers for it (role p2d2.mapproxy.mapproxy_nginx, C(mapproxy_nginx_store_cache)).
  - Everything else is left to MapProxy and listed under C(skipped) with the reason. That is other cache types
    (and C(s3) and C(redis) caches without O(store_caches), or whose tiles MapProxy renders without storing them),
    other layouts of file caches, grids with another origin, caches with C(refresh_before) or C(disable_storage),
    formats other than C(image/png) and C(image/jpeg) (C(mixed) included), layers with dimensions,
    with more than one source or with a source that is not a cache, layers named in O(exclude_layers)
    (MapProxy authorization is Python code around the WSGI app, not part of the config), caches named in
    O(exclude_caches), WMTS templates with C({Style}) or dimensions, and C(/tiles) URLs when the TMS
    service flips rows (C(origin) C(sw)).
  - Also returns the headers MapProxy adds to a tile, C(Cache-Control) from C(globals.tiles.expires_hours)
    and C(Access-Control-Allow-Origin) from C(globals.http.access_control_allow_origin).
options:
  _input:
    description:
      - The result of p2d2.mapproxy.mapproxy_config_info for the configuration nginx serves; its
        C(caches), C(grid_info) and C(served) are read.
    type: dict
    required: true
  exclude_layers:
    description: Layer names to leave to MapProxy (for example those an authorization middleware guards).
    type: list
    elements: str
    default: []
  exclude_caches:
    description: Cache names to leave to MapProxy.
    type: list
    elements: str
    default: []
  store_caches:
    description:
      - Route the tiles of C(s3) and C(redis) caches too (routes with C(store) true), for nginx to keep copies of.
      - Only with a known configuration generation, which the key of those copies holds.
    type: bool
    default: false
author: p2d2 maintainers
"""

EXAMPLES = r"""
- name: Read the live configuration with MapProxy's loader
  p2d2.mapproxy.mapproxy_config_info:
    path: /etc/mapproxy/mapproxy.yaml
  register: __mapproxy_live

- name: Choose the URLs nginx answers from disk
  ansible.builtin.set_fact:
    __plan: "{{ __mapproxy_live | p2d2.mapproxy.mapproxy_nginx_fast_path(exclude_layers=['private']) }}"
"""

RETURN = r"""
_value:
  description:
    - C(routes), one per served URL form, each with C(layer), C(cache), C(grid), C(service) (C(wmts) or
      C(tiles)), C(regex) (an nginx location regex with the captures C(z), C(x) and C(y)), C(root) (the
      cache directory; V(null) for a store route), C(file) (the try_files path below C(root); V(null) for a store
      route), C(store) (the tiles are in an C(s3) or C(redis) cache), C(content_type) and C(keep_unstored)
      (true when nginx may keep MapProxy's answers for tiles it does not store, such as those outside a
      source's coverage; false for caches whose tiles MapProxy renders on request without storing them, with
      C(use_direct_from_level), C(use_direct_from_res), or C(upscale_tiles) or C(downscale_tiles) without
      C(cache_rescaled_tiles), and when the generation is unknown).
    - C(generation), the generation of the configuration read (a SHA-1 of the files MapProxy read), empty when
      unknown.
    - C(skipped), one sentence per layer, cache or URL form left to MapProxy, naming it and why.
    - C(cache_control) and C(cors_origin), the header values MapProxy sends with a tile (C(cors_origin) is
      empty when MapProxy sends none).
  type: dict
"""

# Content-Type MapProxy sends ('image/' + the tile's format) and the cache file's extension.
FORMATS = {'image/png': 'png', 'image/jpeg': 'jpeg'}
WMTS_DEFAULT_TEMPLATE = '/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}'
WMTS_VARS = {'Layer', 'TileMatrixSet', 'TileMatrix', 'TileCol', 'TileRow', 'Format'}
# Names and paths written into nginx.conf unquoted or in a regex: keep to what needs no escaping there.
SAFE_NAME = re.compile(r'^[A-Za-z0-9_.:-]+$')
SAFE_PATH = re.compile(r'^/[A-Za-z0-9_./-]*$')


def _mapping(value, what):
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"mapproxy_nginx_fast_path: {what} must be a mapping, not {type(value).__name__}")
    return value


def _layers(layers, skipped):
    """Named layers, nested ones included."""
    result = []
    if isinstance(layers, Mapping):
        skipped.append("layers: the old mapping form of 'layers' is not read; all tiles go to MapProxy")
        return result
    for layer in layers or []:
        if not isinstance(layer, Mapping):
            continue
        if layer.get('name'):
            result.append(layer)
        result.extend(_layers(layer.get('layers'), skipped))
    return result


def _check_cache(name, cache, exclude_caches, store_caches, generation):
    """Why nginx cannot answer a cache's tiles, or None. ``cache`` is MapProxy's answer."""
    if name in exclude_caches:
        return 'it is listed in mapproxy_nginx_exclude_caches'
    if cache.get('type') in STORE_TYPES:
        if not store_caches:
            return f"it is a {cache.get('type')} cache and mapproxy_nginx_store_cache is false"
        if not generation:
            return f"it is a {cache.get('type')} cache and the configuration's generation is unknown"
        if not SAFE_NAME.match(name):
            return "its name has characters that nginx's store of copies does not take"
        if cache.get('renders_unstored'):
            return 'MapProxy renders some of its tiles on every request without storing them'
    elif cache.get('type') != 'file':
        return f"it is a {cache.get('type')} cache, not files nginx can read"
    elif cache.get('directory_layout') != 'tms':
        return f"its directory_layout is {cache.get('directory_layout')}, not tms (z/x/y.ext)"
    if cache.get('refresh_before'):
        return 'it has refresh_before: MapProxy renews old tiles when they are requested'
    if cache.get('disable_storage'):
        return 'it has disable_storage: nothing is on disk'
    if cache.get('format') not in FORMATS or (cache.get('type') == 'file'
                                              and cache.get('file_ext') != FORMATS[cache.get('format')]):
        return f"its format is {cache.get('format')}; the fast path serves image/png and image/jpeg only"
    return None


def _wmts_regex(template, layer, grid_name, ext):
    variables = re.findall(r'\{(\w+)\}', template)
    unknown = sorted(set(variables) - WMTS_VARS)
    if unknown:
        return None, f"the WMTS restful_template has {', '.join('{' + v + '}' for v in unknown)}"
    if sorted(variables) != sorted(set(variables)) or not {'TileMatrix', 'TileCol', 'TileRow'} <= set(variables):
        return None, 'the WMTS restful_template repeats or lacks a variable'
    values = {'Layer': re.escape(layer), 'TileMatrixSet': re.escape(grid_name), 'Format': re.escape(ext),
              'TileMatrix': '(?<z>[0-9]+)', 'TileCol': '(?<x>[0-9]+)', 'TileRow': '(?<y>[0-9]+)'}
    parts = re.split(r'(\{\w+\})', template)
    regex = ''.join(values[p[1:-1]] if re.fullmatch(r'\{\w+\}', p) else re.escape(p) for p in parts)
    return '^/wmts' + regex + '$', None


def mapproxy_nginx_fast_path(info, exclude_layers=None, exclude_caches=None, store_caches=False):
    info = _mapping(info, 'the input')
    exclude_layers = list(exclude_layers or [])
    exclude_caches = list(exclude_caches or [])
    served = _mapping(info.get('served'), 'served')
    if not served:
        # No configuration read (the fast path is off): nothing is served from disk.
        return {'routes': [], 'skipped': [], 'cache_control': '', 'cors_origin': '', 'generation': ''}
    services = _mapping(served.get('services'), 'services')
    caches = _mapping(info.get('caches'), 'caches')
    grids = _mapping(info.get('grid_info'), 'grid_info')
    skipped = []

    max_age = int(float(served.get('expires_hours', 72)) * 60 * 60)
    cors = served.get('access_control_allow_origin')
    if cors is None:
        cors = ''
    if not isinstance(cors, str) or re.search(r'["\\\s;{}$]', cors):
        raise AnsibleFilterError(
            f"mapproxy_nginx_fast_path: globals.http.access_control_allow_origin is {cors!r}: "
            "give one origin or '*' (or '' for none)")

    wmts = 'wmts' in services
    wmts_conf = _mapping(services.get('wmts'), 'services.wmts')
    restful = wmts_conf.get('restful')
    if wmts_conf.get('kvp') is None and restful is None:
        restful = True
    template = wmts_conf.get('restful_template') or WMTS_DEFAULT_TEMPLATE
    if wmts and not restful:
        skipped.append('WMTS: the restful service is off')
    tms = 'tms' in services
    tms_conf = _mapping(services.get('tms'), 'services.tms')
    tiles = tms and tms_conf.get('origin') not in ('sw', 'll')
    if tms and not tiles:
        skipped.append(f"/tiles: the TMS service has origin {tms_conf.get('origin')}: rows are flipped")
    use_grid_names = bool(tms_conf.get('use_grid_names'))

    generation = served.get('generation') or ''
    if not re.fullmatch(r'[0-9a-f]{40}|', str(generation)):
        raise AnsibleFilterError(f"mapproxy_nginx_fast_path: served.generation is {generation!r}, not a SHA-1")

    cache_reasons = {}
    for name, cache in caches.items():
        reason = _check_cache(name, _mapping(cache, f"cache '{name}'"), exclude_caches, bool(store_caches), generation)
        cache_reasons[name] = reason
        if reason:
            skipped.append(f"cache {name}: {reason}")

    routes = []
    seen = {}
    for layer in _layers(served.get('layers'), skipped):
        lname = str(layer['name'])
        if lname in exclude_layers:
            skipped.append(f"layer {lname}: it is listed in mapproxy_nginx_exclude_layers")
            continue
        if layer.get('dimensions'):
            skipped.append(f"layer {lname}: it has dimensions")
            continue
        if not SAFE_NAME.match(lname):
            skipped.append(f"layer {lname!r}: its name has characters the fast path does not route")
            continue
        if 'tile_sources' in layer:
            sources = list(layer.get('tile_sources') or [])
        else:
            sources = list(layer.get('sources') or [])
            if not sources:
                continue
            if any(s not in caches for s in sources):
                skipped.append(f"layer {lname}: a source is not a cache")
                continue
            if len(sources) > 1:
                skipped.append(f"layer {lname}: more than one source (MapProxy serves no tiles for it)")
                continue
        for cname in sources:
            if cname not in caches or cache_reasons.get(cname):
                if cname not in caches:
                    skipped.append(f"layer {lname}: tile source {cname} is not a cache")
                continue
            cache = caches[cname]
            ext = FORMATS[cache['format']]
            for gname, root in (cache.get('directories') or {}).items():
                grid = _mapping(grids.get(gname), f"grid '{gname}'")
                what = f"layer {lname}, cache {cname}, grid {gname}"
                if grid.get('origin') not in ('nw', 'ul'):
                    origin = {'ll': 'sw', 'sw': 'sw'}.get(grid.get('origin'), grid.get('origin'))
                    skipped.append(f"{what}: the grid's origin is {origin}, not nw")
                    continue
                store = cache.get('type') in STORE_TYPES
                if not SAFE_NAME.match(str(gname)) or not (store or SAFE_PATH.match(str(root))):
                    skipped.append(f"{what}: its directory or grid name has characters the fast path does not route")
                    continue
                common = {'layer': lname, 'cache': cname, 'grid': gname, 'store': store,
                          'root': None if store else root, 'file': None if store else f"/$z/$x/$y.{ext}",
                          'content_type': f"image/{ext}",
                          'keep_unstored': bool(generation) and not store and not cache.get('renders_unstored')}
                forms = []
                if wmts and restful:
                    regex, why = _wmts_regex(template, lname, str(gname), ext)
                    if why:
                        skipped.append(f"{what}: WMTS restful: {why}")
                    else:
                        forms.append(('wmts', regex))
                if tiles:
                    if use_grid_names:
                        path = re.escape(lname) + '/' + re.escape(str(gname))
                    else:
                        path = re.escape(lname + '_' + str(grid.get('srs', '')).replace(':', '').upper())
                    forms.append(('tiles', f"^/tiles/{path}/(?<z>[0-9]+)/(?<x>[0-9]+)/(?<y>[0-9]+)\\.{ext}$"))
                for service, regex in forms:
                    if regex in seen:
                        # MapProxy keeps the last tile layer for a name: leave the URL to it.
                        seen[regex]['ambiguous'] = True
                        continue
                    route = dict(common, service=service, regex=regex)
                    seen[regex] = route
                    routes.append(route)
    for route in [r for r in routes if r.get('ambiguous')]:
        skipped.append(f"layer {route['layer']}, grid {route['grid']}, {route['service']}: "
                       "two tile layers share the URL")
    routes = [r for r in routes if not r.get('ambiguous')]
    return {
        'routes': routes,
        'skipped': skipped,
        'cache_control': f"public, max-age={max_age}, s-maxage={max_age}",
        'cors_origin': cors,
        'generation': generation,
    }


class FilterModule:
    def filters(self):
        return {'mapproxy_nginx_fast_path': mapproxy_nginx_fast_path}
