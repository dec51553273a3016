"""The verify suite's state-reading scripts, run for real with /bin/sh.

Three ways: on this machine as it is (whatever of iproute2, util-linux, systemd and nvme-cli it has: the
script must finish and every section must parse, or fail as a read failure, never break the suite); against
a prepared tree standing in for a node's sysfs, procfs and /etc, and a target's nvmet configfs (the shell's
own reads, the sysfs walk from the mounted device to its subsystem), with stand-ins only for the tools that
need a live pod (findmnt, ip, rdma, systemctl, ping, nvme, df, curl, runuser); and through
:class:`HostFacts`, as the checks call it, counting the commands a host answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from testinfra.backend.base import CommandResult

from deploy.loader import load_spec
from deploy.plan import NodePlan, Plan, TargetPlan, build_plan
from deploy.shipped import verify_suite_dir
from tests import verify_pod_sim as sim

sys.path.insert(0, str(verify_suite_dir()))

import verify_expect as ve
import verify_facts as vf
import verify_parse as vp
import verify_script as vs
import verify_state as vt

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab" / "pod.yaml"


class _Backend:
    @staticmethod
    def decode(data: bytes) -> str:
        return data.decode("utf-8", "replace")

    @staticmethod
    def encode(data: str) -> bytes:
        return data.encode("utf-8")


class LocalHost:
    """Runs what testinfra would send over SSH with this machine's /bin/sh, on a given PATH."""

    def __init__(self, path: str | None = None):
        self.env = dict(os.environ, LC_ALL="C")
        if path:
            self.env["PATH"] = path
        self.commands: list[str] = []

    def run(self, command: str, *args: str) -> CommandResult:
        assert command == "sh -c %s sh %s"
        script, boundary = args
        self.commands.append(script)
        proc = subprocess.run(
            ["/bin/sh", "-c", script, "sh", boundary], env=self.env, capture_output=True, timeout=120, check=False
        )
        return CommandResult(_Backend(), proc.returncode, b"sh", proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def lab_plan() -> Plan:
    return build_plan(load_spec(LAB))


@pytest.fixture
def node1(lab_plan: Plan) -> NodePlan:
    return lab_plan.node("node1")


@pytest.fixture
def target(lab_plan: Plan) -> TargetPlan:
    return lab_plan.targets[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestSyntax:
    @pytest.mark.parametrize("shell", ["/bin/sh", "dash", "bash"])
    def test_scripts_parse(self, shell: str, node1: NodePlan, lab_plan: Plan) -> None:
        """The scripts are plain POSIX sh: Debian's /bin/sh (dash) and bash in POSIX mode parse them."""
        if not shutil.which(shell):
            pytest.skip(f"no {shell} here")
        argv = [shell, "--posix"] if shell == "bash" else [shell]
        for script in (
            vs.node_script(ve.node_reads(node1, lab_plan)),
            vs.target_script(ve.target_reads()),
            vs.controllers_script(),
        ):
            proc = subprocess.run([*argv, "-n", "-c", script], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr

    def test_arguments_are_quoted(self, node1: NodePlan, lab_plan: Plan) -> None:
        reads = ve.node_reads(node1, lab_plan)
        odd = vs.NodeReads(**{**reads.__dict__, "mount_path": "/mnt/kv cache; rm -rf /", "files": ("/etc/it's here",)})
        script = vs.node_script(odd)
        assert "mountns '/mnt/kv cache; rm -rf /'" in script
        assert "readfile \"$R\"'/etc/it'\"'\"'s here'" in script


class TestOnThisMachine:
    """The node's script on this machine: it finishes, and every read parses or fails as a read failure."""

    def _facts(self, reads: vs.NodeReads) -> tuple[vf.HostFacts, LocalHost]:
        host = LocalHost()
        return vf.HostFacts("here", host, node_reads=reads), host  # type: ignore[arg-type]

    def _lab_reads_here(self, node1: NodePlan, lab_plan: Plan, **change: object) -> vs.NodeReads:
        """The lab node's reads, with every probe aimed at this machine's loopback (nothing leaves it)."""
        reads = ve.node_reads(node1, lab_plan)
        port = _closed_port()
        fields = {
            **reads.__dict__,
            "portals": ("127.0.0.1",),
            "discoveries": (("tcp", "127.0.0.1", port),),
            "health_urls": (f"http://127.0.0.1:{port}/health",),
            "models_urls": (f"http://127.0.0.1:{port}/v1/models",),
        }
        fields.update(change)
        return vs.NodeReads(**fields)

    def test_the_lab_node_read_runs_here(self, node1: NodePlan, lab_plan: Plan) -> None:
        facts, host = self._facts(self._lab_reads_here(node1, lab_plan))
        facts.ensure_reachable()
        assert len(host.commands) == 1
        state = facts.node()
        reads = state.reads
        expected = {"links", "routes", "sysctl", "modules", "modules-load", "controllers", "mount", "mount-of"}
        expected |= {"mount-unit", "units", "writable", "df", "ping 127.0.0.1", "gpu-ops"}
        expected |= {vs.section_name("health", u) for u in reads.health_urls}
        expected |= {vs.section_name("models", u) for u in reads.models_urls}
        expected |= {vs.section_name("file", f) for f in reads.files}
        expected |= {vs.section_name("discover", *d) for d in reads.discoveries}
        assert expected <= set(state.sections), sorted(expected - set(state.sections))
        for call in (
            lambda: facts.link("eth1"),
            lambda: facts.addresses("eth1.100"),
            lambda: facts.route_to("127.0.0.1"),
            lambda: facts.ping("127.0.0.1", reads.ping_size),
            facts.rdma_links,
            lambda: facts.sysctl("net.core.rmem_max"),
            lambda: facts.file_text(ve.HOSTNQN_FILE),
            lambda: facts.module_state("nvme_rdma"),
            lambda: facts.modules_load(ve.MODULES_LOAD_DIR),
            facts.controllers,
            lambda: facts.mounted_namespace(reads.mount_path),
            lambda: facts.mount(reads.mount_path),
            lambda: facts.mount_of(reads.local_disk_dir),
            lambda: facts.mount_unit_name(reads.mount_path),
            lambda: facts.unit(reads.engine_units[0]),
            lambda: facts.is_enabled(ve.CONNECT_UNIT),
            lambda: facts.writable_by(reads.user, reads.mount_path),
            lambda: facts.space(reads.mount_path, reads.local_disk_dir),
            lambda: facts.http_status(reads.health_urls[0]),
            lambda: facts.served_models(reads.models_urls[0]),
            facts.gpu_ops_import,
            lambda: facts.discover(*reads.discoveries[0]),
        ):
            with contextlib.suppress(AssertionError):  # a read failure (no systemd, no nvme-cli ...) is a finding
                call()
        assert "lo" in state.links()
        assert facts.http_status(reads.health_urls[0])[0] == 0  # nothing listens there
        assert facts.served_models(reads.models_urls[0])[0] is None
        gpu = Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi")
        assert facts.gpu_ops_import()[0] == ("failed" if gpu else "not-applicable")  # no LMCache in the lab's venv
        if not Path(reads.mount_path).is_mount():
            assert facts.mounted_namespace(reads.mount_path)["mounted"] == "no"
            assert facts.mount(reads.mount_path) is None
        if not Path(reads.local_disk_dir).exists():
            assert facts.mount_of(reads.local_disk_dir) is None
        if not shutil.which("nvme"):
            with pytest.raises(AssertionError, match="exited 127"):
                facts.discover(*reads.discoveries[0])

    def test_values_match_this_machine(self, node1: NodePlan, lab_plan: Plan, tmp_path: Path) -> None:
        """Reads pointed at what this machine has agree with reading it directly."""
        loaded = sorted(p.name for p in Path("/sys/module").iterdir() if (p / "refcnt").exists())[:2]
        reads = self._lab_reads_here(
            node1,
            lab_plan,
            mount_path="/",
            local_disk_dir=str(tmp_path),
            files=("/etc/os-release", "/etc/no-such-file"),
            modules=(*loaded, "no_such_module"),
            sysctls=("net.core.rmem_max", "kernel.pid_max"),
        )
        facts, _ = self._facts(reads)
        for key in reads.sysctls:
            path = Path("/proc/sys") / vs.sysctl_path(key)
            if path.exists():
                assert facts.sysctl(key) == path.read_text().strip()  # a sysctl answers only a read from its start
        assert facts.file_text("/etc/os-release") == Path("/etc/os-release").read_text()
        assert facts.file_text("/etc/no-such-file") is None
        for name in loaded:
            assert facts.module_state(name) == "loaded"
        assert facts.module_state("no_such_module") == "absent"
        if shutil.which("findmnt"):
            fstype = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-M", "/"], capture_output=True, text=True)
            mount = facts.mount("/")
            assert mount is not None and mount["fstype"] == fstype.stdout.strip()
            assert facts.mounted_namespace("/")["mounted"] == "yes"
            target = subprocess.run(
                ["findmnt", "-n", "-o", "TARGET", "-T", str(tmp_path)], capture_output=True, text=True
            )
            assert facts.mount_of(str(tmp_path)) == target.stdout.strip()
        if shutil.which("systemd-escape"):
            assert facts.mount_unit_name("/") == "-.mount"
        space = facts.space("/", str(tmp_path))
        assert space["avail"] > 0 and space["size"] >= space["avail"]
        assert space["cache"] > 0  # du of an (almost) empty directory still counts the directory itself
        links = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True).stdout)
        assert {link["ifname"] for link in links} == set(facts.node().links())


# -- a prepared node -----------------------------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def _link(path: Path, to: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(to)


def _tool(bin_dir: Path, name: str, body: str) -> None:
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\n" + body)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class PreparedNode:
    """A node's tree (sysfs, procfs, /etc, the KV cache directory) and stand-ins for its live tools."""

    PID: ClassVar[str] = sim.PID

    def __init__(self, tmp: Path, node: NodePlan, plan: Plan):
        self.root = tmp / "root"
        self.data = tmp / "data"
        self.bin = tmp / "bin"
        self.node = node
        self.reads = ve.node_reads(node, plan)
        self.bin.mkdir(parents=True)
        self.data.mkdir()
        self._tree()
        self._tools()

    def _tree(self) -> None:
        r, n = self.root, self.node
        nqn = n.namespace.subsystem_nqn
        for i, portal in enumerate(n.namespace.portals):
            ctl = r / f"sys/devices/virtual/nvme-fabrics/ctl/nvme{i}"
            _write(ctl / "transport", f"{n.namespace.transport}\n")
            _write(ctl / "subsysnqn", f"{nqn}\n")
            _write(ctl / "address", f"traddr={portal.address},trsvcid={portal.trsvcid},src_addr={n.fabric.address}\n")
            _write(ctl / "state", "live\n")
            _link(r / f"sys/class/nvme/nvme{i}", f"../../devices/virtual/nvme-fabrics/ctl/nvme{i}")
        _write(r / "sys/class/nvme/nvme9/state", "live\n")  # a directory without subsysnqn is skipped
        subsys = r / "sys/devices/virtual/nvme-subsystem/nvme-subsys0"
        _write(subsys / "subsysnqn", f"{nqn}\n")
        _write(subsys / "nvme0n1/nsid", f"{n.namespace.nsid}\n")
        _link(r / "sys/dev/block/259:1", "../../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1")
        for module in ("nvme_rdma", "nvme_fabrics", "8021q"):
            (r / "sys/module" / module).mkdir(parents=True)
        _write(
            r / f"lib/modules/{os.uname().release}/modules.builtin", "kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko\n"
        )
        for key, value in ve.sysctls(n).items():
            _write(r / "proc/sys" / vs.sysctl_path(key), f"{value}\n")
        _write(r / ve.SYSCTL_FILE.lstrip("/"), "".join(f"{k} = {v}\n" for k, v in ve.sysctls(n).items()))
        _write(r / ve.HOSTNQN_FILE.lstrip("/"), n.host_nqn)  # no newline at the end
        _write(r / ve.HOSTID_FILE.lstrip("/"), n.host_id + "\n")
        for e in n.engines:
            _write(r / e.lmcache.env_file.lstrip("/"), sim.env_file_text(n, e))
        _write(r / "etc/modules-load.d/kvpod.conf", "# kvpod\nnvme-rdma\nnvme_fabrics\n")
        _write(r / "etc/modules-load.d/vlan.conf", "8021q")
        for e in n.engines:
            proc = r / "proc" / sim.engine_pid(e)
            _write(proc / "cmdline", "".join(a + "\0" for a in sim.argv(n, e)).encode())
            _write(proc / "environ", "".join(f"{k}={v}\0" for k, v in sim.environ(n, e).items()).encode())
            _write(r / ve.local_disk_dir(n, e).lstrip("/") / "chunk-0.pt", b"x" * 10000)

    def _tools(self) -> None:
        n, d = self.node, self.data
        (d / "links.json").write_text(sim.links_json(n))
        (d / "units.txt").write_text(sim.units_text(n, "mnt-kvcache.mount", True))
        portal = n.namespace.portals[0]
        (d / "discovery.json").write_text(sim.discovery_json(n, portal.address, portal.trsvcid))
        log = f'echo "$0 $*" >> {d}/argv\n'
        _tool(
            self.bin,
            "ip",
            log
            + f"""case "$*" in
  "-d -j addr show") cat {d}/links.json ;;
  "-force -j -batch -") while read -r _ _ a; do
      printf '[{{"dst":"%s","dev":"{n.fabric.vlan_interface}","prefsrc":"{n.fabric.address}","flags":[]}}]\\n' "$a"
    done ;;
  *) exit 1 ;;
esac
""",
        )
        _tool(self.bin, "rdma", log + """echo '[{"ifindex":1,"ifname":"rxe0","port":1,"netdev":"eth1"}]'\n""")
        _tool(
            self.bin,
            "findmnt",
            log
            + f"""case "$*" in
  "-n -r -o MAJ:MIN,TARGET,SOURCE,FSTYPE,OPTIONS -M {n.mount.path}")
    echo '259:1 {n.mount.path} /dev/nvme0n1 {n.mount.filesystem} rw,noatime' ;;
  "-n -r -o TARGET -T {n.lmcache_root}") echo '{n.mount.path}' ;;
  *) exit 1 ;;
esac
""",
        )
        _tool(self.bin, "systemctl", log + f"cat {d}/units.txt\n")
        _tool(self.bin, "ping", log + f"printf '%s' '{sim.ping_text(portal.address, ve.ping_size(n))}'\n")
        _tool(self.bin, "nvme", log + f"cat {d}/discovery.json\n")
        _tool(self.bin, "df", log + "printf '      Avail    1B-blocks\\n 1929379840  2040373248\\n'\n")
        models = sim.models_text(n).strip()
        _tool(self.bin, "curl", log + f"""case "$*" in *"/v1/models") echo '{models}' ;; *) echo 200 ;; esac\n""")
        for name in ("runuser", "sudo"):  # as the user: here, as whoever runs the test
            _tool(self.bin, name, log + 'while [ "$1" != -- ] && [ "$1" != sh ]; do shift; done\n'
                  '[ "$1" = -- ] && shift\nexec "$@"\n')  # fmt: skip
        for name in ("systemd-escape",):
            if not shutil.which(name):
                _tool(self.bin, name, log + 'echo "$(echo "${4#/}" | tr / -).mount"\n')

    def host(self) -> LocalHost:
        return LocalHost(f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin")

    def argv(self) -> list[str]:
        return (self.data / "argv").read_text().splitlines()


@pytest.fixture
def prepared(tmp_path: Path, node1: NodePlan, lab_plan: Plan) -> PreparedNode:
    return PreparedNode(tmp_path, node1, lab_plan)


class TestPreparedNode:
    def test_every_check_reads_its_value(self, prepared: PreparedNode, node1: NodePlan) -> None:
        n, reads = node1, prepared.reads
        host = prepared.host()
        facts = vf.HostFacts("node1", host, node_reads=reads, root=str(prepared.root))  # type: ignore[arg-type]
        facts.ensure_reachable()
        fab = n.fabric
        assert facts.link(fab.vlan_interface)["linkinfo"]["info_data"]["id"] == fab.vlan
        assert facts.addresses(fab.vlan_interface) == {f"{fab.address}/{fab.prefix_length}"}
        for portal in n.namespace.portals:
            assert facts.route_to(portal.address)["dev"] == fab.vlan_interface
        first = n.namespace.portals[0].address
        assert facts.ping(first, ve.ping_size(n)).rc == 0
        assert facts.rdma_links()[0]["netdev"] == fab.interface
        assert {k: facts.sysctl(k) for k in ve.sysctls(n)} == {k: str(v) for k, v in ve.sysctls(n).items()}
        assert facts.file_text(ve.HOSTNQN_FILE) == n.host_nqn + "\n"
        assert facts.file_text(ve.HOSTID_FILE).strip() == n.host_id
        assert ve.lmcache_settings(n)["chunk_size"] == int(
            vp.parse_env_file(facts.file_text(n.lmcache.env_file))["LMCACHE_CHUNK_SIZE"]
        )
        assert [facts.module_state(m) for m in ve.kernel_modules(n)] == ["loaded", "loaded", "loaded", "builtin"]
        assert facts.modules_load(ve.MODULES_LOAD_DIR) == {
            "nvme_rdma": {"kvpod.conf"},
            "nvme_fabrics": {"kvpod.conf"},
            "8021q": {"vlan.conf"},
        }
        ctrls = facts.controllers()
        assert [(c.name, c.traddr, c.trsvcid, c.state) for c in ctrls] == [
            ("nvme0", "10.78.0.1", "4420", "live"),
            ("nvme1", "10.78.0.2", "4420", "live"),
        ]
        assert facts.mounted_namespace(n.mount.path) == {
            "mounted": "yes",
            "source": "/dev/nvme0n1",
            "device": "/dev/nvme0n1",
            "subsysnqn": n.namespace.subsystem_nqn,
            "subsystem": "nvme-subsys0",
            "nsid": str(n.namespace.nsid),
        }
        assert facts.mount(n.mount.path) == {
            "target": n.mount.path,
            "source": "/dev/nvme0n1",
            "fstype": n.mount.filesystem,
            "options": "rw,noatime",
        }
        assert facts.mount_of(n.lmcache_root) == n.mount.path
        assert facts.mount_unit_name(n.mount.path) == "mnt-kvcache.mount"
        assert facts.unit("mnt-kvcache.mount")["ActiveState"] == "active"
        assert facts.is_enabled("mnt-kvcache.mount") == "generated"
        assert facts.is_enabled(ve.CONNECT_UNIT) == "enabled"
        assert len(n.engines) == 2
        for e in n.engines:
            pid = facts.unit(e.unit)["MainPID"]
            assert pid == sim.engine_pid(e)
            assert facts.proc_user(pid) == getpass.getuser()  # the owner of the prepared /proc/PID
            assert facts.proc_cmdline(pid) == sim.argv(n, e)
            assert facts.proc_environ(pid)["CUDA_VISIBLE_DEVICES"] == e.cuda_visible_devices
            assert facts.writable_by(n.vllm.user, ve.local_disk_dir(n, e)) == (True, "")
            assert facts.http_status(e.health_url) == (200, "200")
            assert facts.served_models(e.models_url) == ([n.vllm.model], "")
        assert facts.writable_by(n.vllm.user, n.mount.path) == (True, "")
        space = facts.space(n.mount.path, n.lmcache_root)
        assert space["avail"] == 1929379840 and space["cache"] >= 20000
        assert facts.gpu_ops_import()[0] == "not-applicable"
        records = facts.discover(*reads.discoveries[0])
        assert [r["subnqn"] for r in records] == [n.namespace.subsystem_nqn]
        assert len(host.commands) == 1 and facts.commands == 1

        argv = prepared.argv()
        assert f"{prepared.bin}/ping -M do -s 8972 -c 1 -W 3 10.78.0.1" in argv
        assert f"{prepared.bin}/nvme discover -t rdma -a 10.78.0.2 -s 4420 -o json" in argv
        show = next(a for a in argv if a.startswith(f"{prepared.bin}/systemctl show"))
        assert show.endswith(f"-- {' '.join(n.engine_units())} {ve.CONNECT_UNIT} mnt-kvcache.mount")
        assert sum(a.startswith(f"{prepared.bin}/ip ") for a in argv) == 2  # addr show; all routes in one batch

    def test_a_missing_file_and_an_unmounted_path(self, prepared: PreparedNode, node1: NodePlan) -> None:
        (prepared.root / ve.HOSTID_FILE.lstrip("/")).unlink()
        shutil.rmtree(prepared.root / node1.lmcache_root.lstrip("/"))
        _tool(prepared.bin, "findmnt", "exit 1\n")
        facts = vf.HostFacts("node1", prepared.host(), node_reads=prepared.reads, root=str(prepared.root))  # type: ignore[arg-type]
        assert facts.file_text(ve.HOSTID_FILE) is None
        assert facts.mounted_namespace(node1.mount.path) == {"mounted": "no"}
        assert facts.mount(node1.mount.path) is None
        assert facts.mount_of(node1.lmcache_root) is None
        not_dir = f"{ve.local_disk_dir(node1)} is not a directory"
        assert facts.writable_by(node1.vllm.user, ve.local_disk_dir(node1)) == (False, not_dir)
        assert facts.space(node1.mount.path, node1.lmcache_root)["cache"] == 0

    def test_the_hf_env_file_and_the_offline_model_files(self, prepared: PreparedNode, node1: NodePlan) -> None:
        """The Hugging Face env file's text and mode, and a model's files found by their pattern (`*` a revision)."""
        hf = node1.vllm.hf_env_file or ""
        staged = "/srv/hf/hub/models--org--name/snapshots/abc123/config.json"
        _write(prepared.root / hf.lstrip("/"), sim.hf_env_text(node1))
        (prepared.root / hf.lstrip("/")).chmod(0o640)
        _write(prepared.root / staged.lstrip("/"), "{}")
        _write(prepared.root / "srv/hf/hub/models--org--name/snapshots/no-config/tokenizer.json", "{}")
        hub, local = "/srv/hf/hub/models--org--name/snapshots/*/config.json", "/srv/models/x y/config.json"
        reads = dataclasses.replace(prepared.reads, modes=(hf,), model_files=(hub, local))
        facts = vf.HostFacts("node1", prepared.host(), node_reads=reads, root=str(prepared.root))  # type: ignore[arg-type]
        assert vp.parse_env_file(facts.file_text(hf) or "")["HF_TOKEN"] == node1.vllm.hf_env["HF_TOKEN"].reveal()
        assert (facts.file_mode(hf) or ("",))[0] == "640"
        assert facts.model_files(hub) == facts.model_files(local) == [staged]
        with pytest.raises(vt.ReadFailed, match="not read"):
            facts.model_files("/other/config.json")
        shutil.rmtree(prepared.root / "srv/hf")
        fresh = vf.HostFacts("node1", prepared.host(), node_reads=reads, root=str(prepared.root))  # type: ignore[arg-type]
        assert fresh.model_files(hub) == []

    def test_controllers_only(self, prepared: PreparedNode) -> None:
        """A node asked only for its controllers (the pod-wide check elsewhere) answers the small script."""
        host = prepared.host()
        facts = vf.HostFacts("node1", host, node_reads=prepared.reads, root=str(prepared.root))  # type: ignore[arg-type]
        assert [c.traddr for c in facts.controllers()] == ["10.78.0.1", "10.78.0.2"]
        assert [c.traddr for c in facts.controllers()] == ["10.78.0.1", "10.78.0.2"]
        assert host.commands == [vs.controllers_script(str(prepared.root))]

    # -- a prepared target ---------------------------------------------------------------------------------------

    @pytest.mark.parametrize(("imports", "outcome"), [(True, "imported"), (False, "failed")])
    def test_lmcache_gpu_ops_on_a_gpu_node(
        self, prepared: PreparedNode, node1: NodePlan, imports: bool, outcome: str
    ) -> None:
        """With /dev/nvidia0 the engines' interpreter must import LMCache's compiled ops; a failed import (the
        fallback LMCache would take) is a failure, not a pass."""
        _write(prepared.root / "dev/nvidia0", "")
        python = prepared.bin / "fake-python"
        python.write_text(
            '#!/bin/sh\necho "$2" >> '
            + str(prepared.data / "imports")
            + "\n"
            + ("echo imported /x/cuda_ops.so\n" if imports else "echo 'ImportError: libcudart.so.13' >&2; exit 1\n")
        )
        python.chmod(0o755)
        _write(prepared.root / node1.vllm.executable.lstrip("/"), f"#!{python}\n")
        facts = vf.HostFacts("node1", prepared.host(), node_reads=prepared.reads, root=str(prepared.root))  # type: ignore[arg-type]
        result, said = facts.gpu_ops_import()
        assert result == outcome
        assert ("cuda_ops" in said) if imports else ("libcudart.so.13" in said)
        assert "lmcache.cuda_ops" in (prepared.data / "imports").read_text()


def _nvmet_tree(root: Path, target: TargetPlan) -> Path:
    nvmet = root / ve.NVMET_ROOT.lstrip("/")
    for s in target.subsystems:
        sub = nvmet / "subsystems" / s.nqn
        _write(sub / "attr_allow_any_host", "0\n")
        _write(sub / "attr_serial", "1234567890abcdef\n")
        (sub / "allowed_hosts").mkdir(parents=True)
        if s.allowed_host_nqn:
            (nvmet / "hosts" / s.allowed_host_nqn).mkdir(parents=True, exist_ok=True)
            _link(sub / "allowed_hosts" / s.allowed_host_nqn, f"../../../hosts/{s.allowed_host_nqn}")
        _write(sub / "namespaces" / str(s.nsid) / "device_path", f"{s.device_path}\n")
        _write(sub / "namespaces" / str(s.nsid) / "enable", "1\n")
    for p in target.portals:
        port = nvmet / "ports" / str(p.port_id)
        for attr, value in (
            ("addr_trtype", p.transports[0]),
            ("addr_traddr", p.address),
            ("addr_trsvcid", str(p.trsvcid)),
            ("addr_adrfam", "ipv4"),
        ):
            _write(port / attr, f"{value}\n")
        (port / "subsystems").mkdir()
        for s in target.subsystems:
            _link(port / "subsystems" / s.nqn, f"../../../subsystems/{s.nqn}")
    return nvmet


class TestPreparedTarget:
    def test_configfs_as_planned(self, tmp_path: Path, target: TargetPlan) -> None:
        _nvmet_tree(tmp_path, target)
        host = LocalHost()
        facts = vf.HostFacts("target", host, target_reads=ve.target_reads(), root=str(tmp_path))  # type: ignore[arg-type]
        state = facts.nvmet(ve.NVMET_ROOT)
        assert state.present
        assert set(state.subsystems) == {s.nqn for s in target.subsystems}
        for s in target.subsystems:
            sub = state.subsystems[s.nqn]
            assert sub.allow_any_host == "0"
            assert sub.allowed_hosts == ({s.allowed_host_nqn} if s.allowed_host_nqn else set())
            assert sub.namespaces == {str(s.nsid): (s.device_path, "1")}
        for p in target.portals:
            port = state.ports[str(p.port_id)]
            assert port.attrs == {
                "addr_trtype": p.transports[0],
                "addr_traddr": p.address,
                "addr_trsvcid": str(p.trsvcid),
                "addr_adrfam": "ipv4",
            }
            assert port.subsystems == {s.nqn for s in target.subsystems}
        assert len(host.commands) == 1

    def test_without_nvmet(self, tmp_path: Path) -> None:
        facts = vf.HostFacts("target", LocalHost(), target_reads=ve.target_reads(), root=str(tmp_path))  # type: ignore[arg-type]
        assert facts.nvmet(ve.NVMET_ROOT) == vp.NvmetState(present=False)

    def test_empty_configfs(self, tmp_path: Path) -> None:
        (tmp_path / ve.NVMET_ROOT.lstrip("/") / "subsystems").mkdir(parents=True)
        facts = vf.HostFacts("target", LocalHost(), target_reads=ve.target_reads(), root=str(tmp_path))  # type: ignore[arg-type]
        assert facts.nvmet(ve.NVMET_ROOT) == vp.NvmetState(present=True)


class TestReadFailures:
    def test_unreachable_is_remembered(self, node1: NodePlan, lab_plan: Plan) -> None:
        class Down:
            calls = 0

            def run(self, command: str, *args: str) -> CommandResult:
                Down.calls += 1
                raise RuntimeError(CommandResult(_Backend(), 255, b"ssh", b"", b"ssh: connect to host x: refused\n"))

        facts = vf.HostFacts("node1", Down(), node_reads=ve.node_reads(node1, lab_plan))  # type: ignore[arg-type]
        for _ in range(3):
            with pytest.raises(vt.HostUnreachable, match="node1: SSH failed: ssh: connect to host x: refused"):
                facts.link("eth1")
        assert Down.calls == 1

    def test_a_script_that_stops_early(self, node1: NodePlan, lab_plan: Plan) -> None:
        class Broken:
            def run(self, command: str, *args: str) -> CommandResult:
                return CommandResult(_Backend(), 2, b"sh", b"", b"sh: 1: Syntax error: end of file unexpected\n")

        facts = vf.HostFacts("node1", Broken(), node_reads=ve.node_reads(node1, lab_plan))  # type: ignore[arg-type]
        with pytest.raises(vt.ReadFailed, match="the state read stopped \\(exit 2\\): sh: 1: Syntax error"):
            facts.ensure_reachable()


def test_connector_check_runs_the_executables_interpreter(tmp_path: Path) -> None:
    """The state read imports LMCache's connector with the interpreter of vLLM's executable (a venv's, from its
    #! line) and reports the versions it sees; an interpreter without lmcache fails the section."""
    from deploy.lab.wheels import build_standin_wheelhouse

    build_standin_wheelhouse(tmp_path / "wheels", "0.5.6")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-index"]
    subprocess.run([*pip, "--find-links", str(tmp_path / "wheels"), "vllm==0.0.0", "lmcache==0.5.6"], check=True)
    bare = tmp_path / "bare-vllm"
    bare.write_text("#!/usr/bin/env python3\n")

    def run(executable: Path) -> vp.Section:
        script = vs._PRELUDE + f"sect connector connector {executable} {ve.CONNECTOR_MODULE}\n"
        out = subprocess.run(["sh", "-c", script, "sh", "BOUNDARY"], capture_output=True, text=True).stdout
        return vp.split_sections(out, "BOUNDARY")[0]["connector"]

    good = run(venv / "bin" / "vllm")
    assert good.ok, good.why()
    assert vp.parse_words(good.stdout) == {
        "interpreter": str(venv / "bin" / "python"),
        "vllm": "0.0.0+standin",
        "lmcache": "0.5.6+standin",
    }
    broken = run(bare)
    assert not broken.ok and "ModuleNotFoundError" in broken.why()
