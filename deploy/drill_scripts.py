"""The scripts of ``kvpod drill`` (pure): on a node, start fio, wait for its paths, finish and clean up; on a
linux-nvmet target, take a portal's links away and restore them."""

from __future__ import annotations

from deploy.drill_plan import ERR_FILE, PID_FILE, RESULT_FILE, STATE_DIR, STOP_TIMEOUT_S, DrillJob, fio_argv
from deploy.encode import shell_word, shell_words
from deploy.names import NVMET_ROOT


def _paths_function(nqn: str) -> list[str]:
    """``paths``: one line ``<state> <address>`` per controller of the subsystem ``nqn`` (sysfs)."""
    return [
        f"nqn={shell_word(nqn)}",
        "paths() {",
        "  for c in /sys/class/nvme-subsystem/*/nvme*; do",
        '    [ -f "$c/address" ] || continue',
        '    [ "$(cat "${c%/*}/subsysnqn" 2>/dev/null)" = "$nqn" ] || continue',
        '    echo "$(cat "$c/state" 2>/dev/null) $(tr -d " " < "$c/address" 2>/dev/null)"',
        "  done",
        "}",
        "live_on() {  # whether a controller through traddr $1 is live",
        '  paths | while read -r s a; do case "$a" in "traddr=$1,"*|"traddr=$1") [ "$s" = live ] && echo y;; esac; '
        "done | grep -q y",
        "}",
    ]


def start_script(job: DrillJob, mountpoint_check: str = "mountpoint -q") -> str:
    """Refuse an unmounted path or a drill already running, print the paths, start fio detached (its pid kept in
    the directory), and confirm it is writing. Exit 3: not a mountpoint. The script returns while fio runs."""
    fio = shell_words(fio_argv(job))
    return "\n".join(
        [
            f"mnt={shell_word(job.mount)}",
            f"dir={shell_word(job.directory)}",
            *_paths_function(job.subsystem_nqn),
            f'if ! {mountpoint_check} "$mnt"; then',
            '  echo "kvpod: $mnt is not mounted: refusing to write a drill file into the filesystem below it" >&2',
            "  exit 3",
            "fi",
            f'if [ -f "$dir/{PID_FILE}" ] && kill -0 "$(cat "$dir/{PID_FILE}")" 2>/dev/null; then',
            '  echo "kvpod: a drill is already running on $mnt" >&2; exit 1',
            "fi",
            'if ! rm -rf "$dir" || ! mkdir -m 700 "$dir"; then echo "kvpod: cannot create $dir" >&2; exit 1; fi',
            'cd "$dir" || exit 1',
            f'setsid {fio} </dev/null >/dev/null 2>"$dir/{ERR_FILE}" &',
            f'echo $! > "$dir/{PID_FILE}"',
            "sleep 1",
            f'if ! kill -0 "$(cat "$dir/{PID_FILE}")" 2>/dev/null; then',
            f'  echo "kvpod: fio did not start:" >&2; cat "$dir/{ERR_FILE}" >&2; rm -rf "$dir"; exit 1',
            "fi",
            'paths | sed "s/^/path /"',
        ]
    )


def wait_script(job: DrillJob, want: str, timeout_s: int, addresses: tuple[str, ...] | None = None) -> str:
    """Wait until the round's paths are down (``want="down"``: no live controller through a dropped portal) or
    the paths through ``addresses`` (default: every planned one) are live (``want="back"``); print
    ``waited=<n>ms`` (node clock) and ``reached=1|0``."""
    if addresses is None:
        addresses = job.dropped if want == "down" else job.planned
    if want == "down":
        test = " && ".join(f"! live_on {shell_word(a)}" for a in addresses) or "true"
    else:
        test = " && ".join(f"live_on {shell_word(a)}" for a in addresses) or "true"
    return "\n".join(
        [
            *_paths_function(job.subsystem_nqn),
            "start=$(date +%s%N)",
            "reached=0",
            "while :; do",
            f"  if {test}; then reached=1; break; fi",
            f"  [ $(( ($(date +%s%N) - start) / 1000000 )) -ge {int(timeout_s) * 1000} ] && break",
            "  sleep 0.2",
            "done",
            'echo "waited=$(( ($(date +%s%N) - start) / 1000000 ))ms"',
            'echo "reached=$reached"',
            'paths | sed "s/^/path /"',
        ]
    )


def finish_script(job: DrillJob, stop_s: int = STOP_TIMEOUT_S) -> str:
    """Stop fio (TERM: it reports what it did), print its JSON and error output, the mount's options, then remove
    the directory. ``stopped=0``: fio did not stop within ``stop_s`` (I/O stuck), it was killed."""
    return "\n".join(
        [
            f"mnt={shell_word(job.mount)}",
            f"dir={shell_word(job.directory)}",
            f'pid=$(cat "$dir/{PID_FILE}" 2>/dev/null)',
            "stopped=1",
            'if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then',
            "  i=0",
            f'  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt {int(stop_s) * 5} ]; do sleep 0.2; i=$((i+1)); done',
            '  if kill -0 "$pid" 2>/dev/null; then stopped=0; kill -KILL "$pid" 2>/dev/null; fi',
            "fi",
            'echo "stopped=$stopped"',
            'echo "options=$(findmnt -no OPTIONS --mountpoint "$mnt")"',
            f'echo "errors-begin"; tail -n 20 "$dir/{ERR_FILE}" 2>/dev/null; echo "errors-end"',
            f'cat "$dir/{RESULT_FILE}" 2>/dev/null',
            'rm -rf "$dir"',
        ]
    )


def cleanup_script(directory: str, stop_s: int = 15) -> str:
    """Stop a drill's fio still running in ``directory`` and remove the directory (after an interruption)."""
    return "\n".join(
        [
            f"dir={shell_word(directory)}",
            f'pid=$(cat "$dir/{PID_FILE}" 2>/dev/null)',
            'if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then',
            "  i=0",
            f'  while kill -0 "$pid" 2>/dev/null && [ "$i" -lt {int(stop_s) * 5} ]; do sleep 0.2; i=$((i+1)); done',
            '  kill -KILL "$pid" 2>/dev/null',
            "fi",
            'rm -rf "$dir"',
        ]
    )


# -- the portal on a linux-nvmet target -------------------------------------------------------------------


def _links_file(port_id: int, state_dir: str) -> str:
    return f"{state_dir}/drill-port-{int(port_id)}.links"


def take_away_script(port_ids: list[int], root: str = NVMET_ROOT, state_dir: str = STATE_DIR) -> str:
    """Unlink each port from every subsystem it serves; the links are recorded first (``/run/kvpod``), so that
    :func:`restore_script` puts back exactly those, also after kvpod itself was interrupted. Prints the
    subsystems taken away, ``<port> <nqn>`` per line."""
    lines = [f"mkdir -p {shell_word(state_dir)}"]
    for pid in port_ids:
        port = f"{root}/ports/{int(pid)}"
        lines += [
            f"port={shell_word(port)}",
            f"links={shell_word(_links_file(pid, state_dir))}",
            '[ -d "$port" ] || { echo "kvpod: no nvmet port $port on the target" >&2; exit 1; }',
            '[ -s "$links" ] || ls "$port/subsystems" > "$links"',
            "while read -r s; do",
            f'  if [ -L "$port/subsystems/$s" ]; then rm "$port/subsystems/$s" || exit 1; fi; echo "{int(pid)} $s"',
            'done < "$links"',
        ]
    return "\n".join(lines)


def restore_script(port_ids: list[int], root: str = NVMET_ROOT, state_dir: str = STATE_DIR) -> str:
    """Link each port again to the subsystems :func:`take_away_script` recorded, then forget the record."""
    lines = []
    for pid in port_ids:
        port = f"{root}/ports/{int(pid)}"
        lines += [
            f"port={shell_word(port)}",
            f"links={shell_word(_links_file(pid, state_dir))}",
            'if [ -f "$links" ]; then',
            "  while read -r s; do",
            f'    if [ -d {shell_word(root)}/subsystems/"$s" ] && [ ! -L "$port/subsystems/$s" ]; then',
            f'      ln -s {shell_word(root)}/subsystems/"$s" "$port/subsystems/$s" || exit 1',
            "    fi",
            '  done < "$links"',
            '  rm -f "$links"',
            "fi",
        ]
    return "\n".join(lines)
