# -*- coding: utf-8 -*-
# Copyright (c) 2026, p2d2 maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run mapproxy-seed and watch it: the one runner of the collection.

The module mapproxy_seed (under the host's system Python) and the seeding role's timer
tool (under the venv's Python, which ships this file beside it) both run mapproxy-seed
through ``run_watched()``, with one stop rule (``RetryWatch``): mapproxy-seed retries a
failing tile up to 100 times, waiting up to 10 minutes between tries, so the runner
stops it when one tile has failed ``limit`` times in a row, gracefully (SIGINT: it keeps
the progress it saved), and kills what is left after a grace period. The standard
library only.
"""

from __future__ import annotations

import collections
import os
import re
import selectors
import signal
import subprocess
import time

RETRY_RE = re.compile(r'An error occurr?ed\. Retry in \d+ seconds: (.*)\. Retries left: (\d+)')
GIVE_UP_RE = re.compile(r'An error occurr?ed\. Giving up')


class RetryWatch:
    """Tells from mapproxy-seed's retry lines when one tile has failed ``limit``
    times in a row: each tile counts its retries down from the same number, so
    the spread of the counts seen is the longest run of failures of one tile.
    A "Giving up" line stops at once."""

    def __init__(self, limit):
        self.limit = max(1, int(limit))
        self.highest = None
        self.lowest = None
        self.last_error = None
        self.line = None
        self.lines = 0

    def feed(self, line):
        """True when mapproxy-seed should be stopped; ``line`` is then the line that said so."""
        if GIVE_UP_RE.search(line):
            self.last_error = self.last_error or line.strip()
            self.line = line
            return True
        match = RETRY_RE.search(line)
        if not match:
            return False
        self.lines += 1
        self.last_error = match.group(1)
        left = int(match.group(2))
        self.highest = left if self.highest is None else max(self.highest, left)
        self.lowest = left if self.lowest is None else min(self.lowest, left)
        if self.highest - self.lowest + 1 >= self.limit:
            self.line = line
            return True
        return False


class Tail:
    """Keep the first and the last lines of a long output."""

    def __init__(self, head=200, tail=800):
        self.head = []
        self.head_max = head
        self.tail = collections.deque(maxlen=tail)
        self.count = 0

    def add(self, line):
        self.count += 1
        if len(self.head) < self.head_max:
            self.head.append(line)
        else:
            self.tail.append(line)

    def text(self):
        lines = list(self.head)
        omitted = self.count - len(self.head) - len(self.tail)
        if omitted > 0:
            lines.append('[... %d lines omitted ...]' % omitted)
        lines.extend(self.tail)
        return '\n'.join(lines)


class WatchedRun:
    """What ``run_watched`` saw: rc, the output (first and last lines), whether the time
    ran out, and the line on which the stop rule stopped the run (``abort_line``)."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.rc = None
        self.stdout = ''
        self.stderr = ''
        self.timed_out = False
        self.abort_line = None
        self.duration = 0.0
        self.proc = None

    def signal(self, sig):
        """Send a signal to the run's process group (a service stop, say)."""
        if self.proc is not None:
            _signal_group(self.proc, sig)


def run_watched(argv, timeout=None, cwd=None, env=None, watch=None, on_line=None, on_start=None,
                grace=3.0, leftover_wait=5.0, popen_args=None, log=None):
    """Run a command that may start children (mapproxy-seed's workers) in its own
    session and read its output line by line (``on_line(stream, line)``). Stops the
    whole process group with SIGINT, and SIGKILL ``grace`` seconds later, when
    ``timeout`` seconds have passed or ``watch.feed(line)`` (a ``RetryWatch``) says so
    for a line on stderr; when the command has exited but what it started keeps its
    pipes open for ``leftover_wait`` seconds, with SIGTERM and then SIGKILL. Commands
    are argv lists, never a shell. ``on_start(run)`` is called once the process runs;
    ``log(text)`` hears why the runner stops it."""
    result = WatchedRun(' '.join(argv))
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, env=env, close_fds=True, start_new_session=True, **(popen_args or {}))
    result.proc = proc
    if on_start is not None:
        on_start(result)
    outputs = {'stdout': Tail(), 'stderr': Tail()}
    partial = {'stdout': b'', 'stderr': b''}
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, 'stdout')
    sel.register(proc.stderr, selectors.EVENT_READ, 'stderr')
    deadline = None if timeout is None else start + timeout
    state = {'kill_at': None, 'stopping': False}
    exited_at = None
    name = os.path.basename(argv[0])

    def stop(sig, why):
        if not state['stopping']:
            if log is not None:
                log(why)
            state['stopping'] = True
            _signal_group(proc, sig)
            state['kill_at'] = time.monotonic() + grace

    def handle(name, line):
        outputs[name].add(line)
        if on_line is not None:
            on_line(name, line)
        if watch is not None and name == 'stderr' and result.abort_line is None and watch.feed(line):
            result.abort_line = line
            why = ('a tile failed %d times in a row (%s); stopping %s, which keeps the progress it last saved'
                   % (watch.limit, watch.last_error, name))
            stop(signal.SIGINT, why)

    try:
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if not state['stopping']:
                if deadline is not None and now >= deadline:
                    result.timed_out = True
                    stop(signal.SIGINT, 'the time ran out (%d s); stopping %s' % (timeout, name))
                elif exited_at is not None and now - exited_at > leftover_wait:
                    # The command is gone, but what it started keeps the pipes open.
                    stop(signal.SIGTERM, '%s has exited, but processes it started still run; stopping them' % name)
            elif state['kill_at'] is not None and now >= state['kill_at']:
                _signal_group(proc, signal.SIGKILL)
                state['kill_at'] = None
                state['killed_at'] = now
            elif state.get('killed_at') is not None and now - state['killed_at'] > 10:
                break
            for key, _mask in sel.select(timeout=0.5):
                name = key.data
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    if partial[name]:
                        handle(name, partial[name].decode('utf-8', 'replace').rstrip('\r'))
                        partial[name] = b''
                    continue
                lines = (partial[name] + chunk).split(b'\n')
                partial[name] = lines.pop()
                for raw in lines:
                    handle(name, raw.decode('utf-8', 'replace').rstrip('\r'))
    finally:
        sel.close()
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        proc.stdout.close()
        proc.stderr.close()
    result.rc = proc.returncode
    result.stdout = outputs['stdout'].text()
    result.stderr = outputs['stderr'].text()
    result.duration = time.monotonic() - start
    return result


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except OSError:
        pass
