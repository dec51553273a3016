"""Round trips and speed of kvpod: prints a table per part. A benchmark, not a test: nothing here asserts.

    python3 benchmarks/round_trips.py start           # wall time of `kvpod validate` / `kvpod plan`, reference pod
    python3 benchmarks/round_trips.py plan            # validate + plan of a 384-node, 16-enclosure spec
    python3 benchmarks/round_trips.py fleet           # converged simulated fleets: 1, 24, 96, 384 nodes
    python3 benchmarks/round_trips.py first           # first bring-up of blank simulated nodes: commands per node
    python3 benchmarks/round_trips.py first --list    # ... and the first node's commands, in order
    python3 benchmarks/round_trips.py lab             # the lab pod (`kvpod lab up` first): no-op up, check, verify
    python3 benchmarks/round_trips.py lab --first     # ... and a first bring-up (rebuilds the lab's VMs)

fleet: each size runs in a fresh interpreter. Every node is the test suite's simulated node, converged by a
real kvpod deploy, behind pyinfra's SSH connector patched to answer from it after sleeping a fixed latency
per command (connect included); wall time and CPU are of ``kvpod up``'s orchestration (read, compare,
report), peak memory is the growth of the process's peak RSS during it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

SIZES = (1, 24, 96, 384)
LATENCIES_MS = (2, 20)


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


# -- plan ---------------------------------------------------------------------------------------------------


def _child_cpu(code: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def part_plan() -> None:
    from fleet_spec import fleet_spec

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "pod.yaml"
        spec.write_text(fleet_spec(384))
        bare = min(_child_cpu("pass") for _ in range(3))
        load = (
            "from deploy.loader import load_spec; from deploy.plan import build_plan; "
            f"build_plan(load_spec({str(spec)!r}))"
        )
        cli = f"import sys; sys.argv = ['kvpod', 'plan', {str(spec)!r}, '--json']; from deploy.cli import main; main()"
        rows = []
        for what, code in (("validate + plan (library)", load), ("`kvpod plan --json` (CLI)", cli)):
            cpu = min(_child_cpu(code + " # " + str(i)) for i in range(3))
            rows.append([what, f"{cpu:.2f}", f"{cpu - bare:.2f}"])
    table(
        "validate + plan: 384 nodes, 16 enclosures (CPU seconds, best of 3)",
        ["what", "CPU s", "CPU s beyond interpreter start"],
        rows,
    )


def _child_wall(argv: list[str]) -> float:
    """Wall seconds from starting an interpreter to its exit (output discarded)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def part_start(runs: int = 7) -> None:
    """Commands that touch no host, from interpreter start to exit: they load neither pyinfra nor gevent."""
    reference = str(ROOT / "inventories" / "reference" / "pod.yaml")
    cli = "import sys; sys.argv = ['kvpod', *sys.argv[1:]]; from deploy.cli import main; main()"
    cases = [
        ("`python3 -c pass` (the interpreter alone)", ["-c", "pass"]),
        ("`kvpod validate` reference pod", ["-c", cli, "validate", reference]),
        ("`kvpod plan` reference pod (tables)", ["-c", cli, "plan", reference]),
        ("`kvpod plan --json` reference pod", ["-c", cli, "plan", reference, "--json"]),
        ("import pyinfra.api + gevent patch (what these commands no longer load)", ["-c", _HOSTS]),
    ]
    rows = []
    for what, argv in cases:
        walls = sorted(_child_wall(argv) for _ in range(runs))
        rows.append([what, f"{walls[0]:.2f}", f"{walls[len(walls) // 2]:.2f}"])
    table(f"from interpreter start to exit (wall seconds, {runs} runs)", ["what", "best", "median"], rows)


_HOSTS = "from gevent import monkey; monkey.patch_all(); import pyinfra.api"


# -- fleet --------------------------------------------------------------------------------------------------


def fleet_child(nodes: int, latency: float) -> dict:
    """One converged fleet behind a simulated SSH connector; returns the figures (runs in a fresh interpreter)."""
    import gevent
    from fleet_spec import fleet_spec
    from pyinfra.connectors import ssh
    from pyinfra.connectors.util import CommandOutput, OutputLine
    from simhost import answer

    from benchmarks.kvpod_sim import fresh_node
    from benchmarks.pyinfra_fake import deploy_run
    from deploy.engine import RunStats
    from deploy.loader import load_spec_text
    from deploy.orchestrate import UpOptions, bring_up
    from deploy.plan import build_plan
    from roles.node import node

    plan = build_plan(load_spec_text(fleet_spec(nodes), "fleet"))
    remotes = {}
    for n in plan.nodes:
        remote = fresh_node(n)
        deploy_run(node, remote, {"kvpod_node": n})
        remotes[n.name] = remote

    def connect(self) -> None:
        gevent.sleep(latency)

    def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
        gevent.sleep(latency)
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        lines = answer(remotes[self.host.name], text)
        return True, CommandOutput([OutputLine("stdout", line) for line in lines])

    ssh.SSHConnector.connect = connect
    ssh.SSHConnector.run_shell_command = run_shell_command
    ssh.SSHConnector.disconnect = lambda self: None

    stats = RunStats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0, wall0 = time.process_time(), time.perf_counter()
    report = bring_up(plan, UpOptions(), stats=stats)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "nodes": nodes,
        "latency_ms": latency * 1000,
        "wall_s": wall,
        "cpu_ms_per_host": 1000 * cpu / nodes,
        "peak_rss_growth_mib": (rss1 - rss0) / 1024,
        "changed": report.changed,
        "max_commands_per_host": max(stats.commands.values()),
        "live_reads": sum(len(v) for v in stats.live_reads.values()),
    }


def part_fleet() -> None:
    rows = []
    base: dict[float, float] = {}
    for latency in LATENCIES_MS:
        for nodes in SIZES:
            with tempfile.TemporaryDirectory() as state:
                env = {**os.environ, "KVPOD_STATE_DIR": state}
                out = subprocess.run(
                    [sys.executable, __file__, "_fleet", str(nodes), str(latency / 1000)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=ROOT,
                )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if nodes == 24:
                base[latency] = r["wall_s"]
            ratio = f"{r['wall_s'] / base[latency]:.1f}" if nodes > 24 and latency in base else ""
            rows.append(
                [
                    nodes,
                    latency,
                    f"{r['wall_s']:.2f}",
                    ratio,
                    f"{r['cpu_ms_per_host']:.1f}",
                    f"{r['peak_rss_growth_mib']:.0f}",
                    r["max_commands_per_host"],
                    r["changed"],
                ]
            )
    table(
        "converged fleet, `kvpod up` orchestration behind a simulated SSH connector",
        [
            "nodes",
            "latency ms",
            "wall s",
            "wall / 24 nodes",
            "CPU ms per host",
            "peak RSS growth MiB",
            "commands per host (max)",
            "changes",
        ],
        rows,
    )


# -- first bring-up -----------------------------------------------------------------------------------------


def first_child(what: str) -> dict:
    """Commands per node of a first bring-up of blank simulated nodes (runs in a fresh interpreter).

    ``fleet``: the whole ``kvpod up`` of a 4-node generated pod (Data24 enclosures: no target host, no switch
    host). ``lab``: the node phase of the lab pod's spec (its switch is a bridge on this machine, its target a
    VM: neither is simulated here), plus the one state read ``kvpod up`` makes of every host before it.
    Every command a real host would run is counted: those at pyinfra's connector (changes, uploads) and one
    per fact read (the one-command state read included, answered with the text the real tools print).
    """
    from collections import Counter

    from fleet_spec import fleet_spec
    from pyinfra.api.host import Host
    from pyinfra.connectors import ssh
    from pyinfra.connectors.util import CommandOutput
    from simhost import answer

    from benchmarks.kvpod_sim import fresh_node
    from benchmarks.pyinfra_fake import _content_of
    from deploy.engine import RunStats, run_phase
    from deploy.facts.snapshot import HostSnapshot, parse_snapshot, snapshot_script
    from deploy.hosts import node_hosts
    from deploy.loader import load_spec, load_spec_text
    from deploy.names import NODE_KEY
    from deploy.orchestrate import UpOptions, bring_up
    from deploy.pipeline.jobs import node_extra
    from deploy.plan import build_plan
    from deploy.shipped import lab_spec
    from roles.node import node
    from roles.node import reads as node_reads

    plan = build_plan(load_spec(lab_spec()) if what == "lab" else load_spec_text(fleet_spec(4), "fleet"))
    remotes = {n.name: fresh_node(n) for n in plan.nodes}
    if what == "lab":
        for remote in remotes.values():
            remote.packages["python3-venv"] = ["3.11"]  # as the lab's image has it
    reads: Counter = Counter()
    first = plan.nodes[0].name
    sequence: list[str] = []  # the first node's commands, in order

    def get_fact(self, cls, *args, **kwargs):
        reads[self.name] += 1
        if self.name == first:
            sequence.append(f"read   {cls.__name__}")
        remote = remotes[self.name]
        if cls is HostSnapshot:
            return parse_snapshot(answer(remote, snapshot_script(list(kwargs["reads"]))))
        return remote.get_fact(cls, *args, **{k: v for k, v in kwargs.items() if not k.startswith("_")})

    def run_shell_command(self, command, print_output=False, print_input=False, **kwargs):
        text = command.get_raw_value() if hasattr(command, "get_raw_value") else str(command)
        if self.host.name == first:
            sequence.append(f"run    {text[:160]}")
        return remotes[self.host.name].run(text), CommandOutput([])

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        if self.host.name == first:
            sequence.append(f"upload {remote_filename}")
        remotes[self.host.name].upload(_content_of(filename_or_io), remote_filename)
        return True

    Host.get_fact = get_fact
    ssh.SSHConnector.connect = lambda self: None
    ssh.SSHConnector.run_shell_command = run_shell_command
    ssh.SSHConnector.put_file = put_file
    ssh.SSHConnector.disconnect = lambda self: None

    stats = RunStats()
    cpu0 = time.process_time()
    if what == "lab":
        hosts = node_hosts(plan, None, node_extra(plan, UpOptions()))
        results = run_phase(
            "node", hosts, node, dry=False, reads_for=lambda data: node_reads(data[NODE_KEY]), stats=stats
        )
        ok = all(r.status == "changed" for r in results)
        survey = 1  # the read of every host before the phases (not run here)
    else:
        ok, survey = bring_up(plan, UpOptions(), stats=stats).ok, 0
    cpu = time.process_time() - cpu0
    names = [n.name for n in plan.nodes]
    changes = max(stats.commands[n] for n in names)
    fact_reads = max(reads[n] for n in names) + survey
    stats2 = RunStats()
    if what == "fleet":
        reads.clear()
        bring_up(plan, UpOptions(), stats=stats2)
    return {
        "what": what,
        "ok": ok,
        "nodes": len(names),
        "changes": changes,
        "reads": fact_reads,
        "live_reads": max(len(stats.live_reads.get(n, [])) for n in names),
        "commands_per_node": changes + fact_reads,
        "second_up_per_node": max(stats2.commands[n] + reads[n] for n in names) if what == "fleet" else "",
        "cpu_ms_per_node": 1000 * cpu / len(names),
        "sequence": sequence,
    }


def part_first(listing: bool = False) -> None:
    rows = []
    for what in ("fleet", "lab"):
        with tempfile.TemporaryDirectory() as state:
            env = {**os.environ, "KVPOD_STATE_DIR": state}
            out = subprocess.run(
                [sys.executable, __file__, "_first", what],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
            )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if listing:
            print(f"\n{what}: the first node's commands, in order\n")
            print("\n".join(f"{i:4d} {line}" for i, line in enumerate(r["sequence"], 1)))
        label = "generated pod, whole `kvpod up`" if what == "fleet" else "lab spec, node phase + state read"
        rows.append(
            [
                label,
                r["nodes"],
                "yes" if r["ok"] else "NO",
                r["commands_per_node"],
                r["changes"],
                r["reads"],
                r["live_reads"],
                r["second_up_per_node"],
                f"{r['cpu_ms_per_node']:.0f}",
            ]
        )
    table(
        "first bring-up of blank simulated nodes: remote commands per node (each fact read one command)",
        [
            "pod",
            "nodes",
            "converged",
            "commands per node",
            "changes and uploads",
            "fact reads",
            "of which live",
            "then a second `kvpod up`",
            "CPU ms per node",
        ],
        rows,
    )


# -- lab ----------------------------------------------------------------------------------------------------


def _kvpod(*args: str) -> tuple[int, float]:
    beside = Path(sys.executable).with_name("kvpod")  # the environment's own (a venv's bin/ is not on the PATH)
    kvpod = str(beside) if beside.exists() else shutil.which("kvpod") or "kvpod"
    start = time.perf_counter()
    code = subprocess.run([kvpod, *args], cwd=ROOT, capture_output=True, text=True).returncode
    return code, time.perf_counter() - start


def _commands(report: Path) -> str:
    data = json.loads(report.read_text())
    per = {name: h["remote_commands"] for name, h in data["hosts"].items()}
    return ", ".join(f"{k} {v}" for k, v in per.items())


def _latest_run(pod: str, kind: str) -> Path | None:
    runs = Path(os.environ.get("KVPOD_STATE_DIR", Path.home() / ".local/state/kvpod")) / "runs" / pod
    found = sorted(runs.glob(f"*-{kind}"))
    return found[-1] if found else None


def part_lab(first: bool) -> None:
    spec = str(ROOT / "inventories" / "lab" / "pod.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if first:
            _kvpod("lab", "down")
            code, seconds = _kvpod("lab", "up")
            run = _latest_run("kvpod-lab", "up")
            if run is not None:
                report = json.loads((run / "report.json").read_text())
                rows.append(
                    [
                        "first bring-up (`kvpod up` in `lab up`)",
                        code,
                        f"{report['seconds']:.1f}",
                        _commands(run / "report.json"),
                    ]
                )
        up = Path(tmp) / "up.json"
        code, seconds = _kvpod("up", spec, "--yes", "--no-verify", "--report", str(up))
        rows.append(["no-op `kvpod up --no-verify`", code, f"{seconds:.1f}", _commands(up)])
        check = Path(tmp) / "check.json"
        code, seconds = _kvpod("check", spec, "--report", str(check))
        rows.append(["`kvpod check`", code, f"{seconds:.1f}", _commands(check)])
        junit = Path(tmp) / "verify.xml"
        code, seconds = _kvpod("verify", spec, "--junit", str(junit))
        rows.append(["`kvpod verify`", code, f"{seconds:.1f}", "(testinfra; not counted at pyinfra's connector)"])
    table(
        "the lab pod (QEMU TCG, 2 cores): wall time of the whole command, remote commands per host",
        ["command", "exit", "wall s", "remote commands per host"],
        rows,
    )


def main(argv: list[str]) -> None:
    if argv[:1] == ["_fleet"]:
        print(json.dumps(fleet_child(int(argv[1]), float(argv[2]))))
        return
    if argv[:1] == ["_first"]:
        print(json.dumps(first_child(argv[1])))
        return
    parts = [a for a in argv if not a.startswith("-")] or ["plan", "fleet"]
    for part in parts:
        if part == "start":
            part_start()
        elif part == "plan":
            part_plan()
        elif part == "fleet":
            part_fleet()
        elif part == "first":
            part_first(listing="--list" in argv)
        elif part == "lab":
            part_lab(first="--first" in argv)
        else:
            raise SystemExit(f"unknown part {part!r} (start, plan, fleet, first, lab)")


if __name__ == "__main__":
    main(sys.argv[1:])
