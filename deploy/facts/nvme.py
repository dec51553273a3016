"""NVMe-oF initiator facts: connected subsystems (from sysfs), the host identity, the nvme-cli version."""

from __future__ import annotations

import re

from pyinfra.api import FactBase

from deploy.nvme_settings import ATTRIBUTES

# Controller states in which the kernel no longer serves (or retries) the path: a new connect is needed.
GONE_STATES = ("deleting", "deleting (no IO)", "dead")

_SUBSYSTEMS = r"""for s in /sys/class/nvme-subsystem/nvme-subsys*; do
  [ -r "$s/subsysnqn" ] || continue
  S=${s##*/}
  printf 'subsys\t%s\t%s\n' "$S" "$(cat "$s/subsysnqn")"
  [ -r "$s/iopolicy" ] && printf 'iopolicy\t%s\t%s\n' "$S" "$(cat "$s/iopolicy")"
  for e in "$s"/nvme*; do
    b=${e##*/}
    case "$b" in
      nvme*c*n*) ;;
      nvme*n*) printf 'ns\t%s\t%s\t%s\t%s\n' "$S" "$b" "$(cat "$e/nsid" 2>/dev/null)" "$(cat "$e/size" 2>/dev/null)" ;;
      *)
        [ -r "$e/transport" ] || continue
        printf 'ctrl\t%s\t%s\t%s\t%s\t%s\n' "$S" "$b" "$(cat "$e/transport")" "$(cat "$e/address")" "$(cat "$e/state")"
        for a in ATTRIBUTES; do
          [ -r "$e/$a" ] && printf 'attr\t%s\t%s\t%s\t%s\n' "$S" "$b" "$a" "$(cat "$e/$a" 2>/dev/null)"
        done
        for n in "$e"/nvme*n*; do
          m=${n##*/}
          case "$m" in nvme*c*n*|'nvme*n*') ;; *)
            printf 'ns\t%s\t%s\t%s\t%s\n' "$S" "$m" "$(cat "$n/nsid" 2>/dev/null)" "$(cat "$n/size" 2>/dev/null)" ;;
          esac
        done ;;
    esac
  done
done
true""".replace("ATTRIBUTES", " ".join(ATTRIBUTES))


def _address(value: str) -> dict[str, str]:
    """``traddr=10.78.0.1,trsvcid=4420,src_addr=10.78.0.11`` -> dict."""
    out = {}
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            out[key] = val
    return out


class NvmeSubsystems(FactBase[dict[str, dict]]):
    """
    Connected NVMe subsystems by NQN, read from ``/sys/class/nvme-subsystem``. Namespaces are the visible
    block devices (``nvme1n1``); hidden multipath path nodes (``nvme1c1n1``) never appear. Size in bytes.

    .. code:: python

        {
            "nqn.2024-01.io.kvpod.lab:target:drive1": {
                "subsystem": "nvme-subsys1",
                "iopolicy": "round-robin",  # absent when the kernel has no such attribute
                "controllers": [
                    {"name": "nvme1", "transport": "rdma", "traddr": "10.78.0.1", "trsvcid": "4420",
                     "state": "live", "settings": {"ctrl_loss_tmo": "600", "reconnect_delay": "10",
                     "fast_io_fail_tmo": "off", "kato": "5", "queue_count": "3"}},
                ],
                "namespaces": [{"name": "nvme1n1", "nsid": 1, "size": 2000000000}],
            },
        }
    """

    default = dict

    def command(self) -> str:
        return _SUBSYSTEMS

    def process(self, output: list[str]) -> dict[str, dict]:
        by_dir: dict[str, dict] = {}
        nqn_of: dict[str, str] = {}
        for line in output:
            parts = line.rstrip("\n").split("\t")
            kind = parts[0]
            if kind == "subsys" and len(parts) >= 3:
                nqn_of[parts[1]] = parts[2].strip()
                by_dir.setdefault(parts[1], {"subsystem": parts[1], "controllers": [], "namespaces": []})
            elif kind == "ctrl" and len(parts) >= 6:
                entry = by_dir.setdefault(parts[1], {"subsystem": parts[1], "controllers": [], "namespaces": []})
                addr = _address(parts[4])
                entry["controllers"].append(
                    {
                        "name": parts[2],
                        "transport": parts[3],
                        "traddr": addr.get("traddr"),
                        "trsvcid": addr.get("trsvcid"),
                        "state": parts[5].strip(),
                    }
                )
            elif kind == "iopolicy" and len(parts) >= 3 and parts[1] in by_dir:
                by_dir[parts[1]]["iopolicy"] = parts[2].strip()
            elif kind == "attr" and len(parts) >= 5:
                for ctrl in by_dir.get(parts[1], {}).get("controllers", []):
                    if ctrl["name"] == parts[2]:
                        ctrl.setdefault("settings", {})[parts[3]] = parts[4].strip()
            elif kind == "ns" and len(parts) >= 5:
                entry = by_dir.setdefault(parts[1], {"subsystem": parts[1], "controllers": [], "namespaces": []})
                if any(ns["name"] == parts[2] for ns in entry["namespaces"]):
                    continue
                nsid = int(parts[3]) if parts[3].strip().isdigit() else None
                sectors = int(parts[4]) if parts[4].strip().isdigit() else 0
                entry["namespaces"].append({"name": parts[2], "nsid": nsid, "size": sectors * 512})
        out = {}
        for d, entry in by_dir.items():
            if d not in nqn_of:
                continue
            entry["controllers"].sort(key=lambda c: c["name"])
            entry["namespaces"].sort(key=lambda n: n["name"])
            out[nqn_of[d]] = entry
        return out


def namespace_of(subsystems: dict[str, dict], nqn: str, nsid: int | None = None) -> dict | None:
    """The visible namespace (``{"name", "nsid", "size"}``) of subsystem ``nqn``; by ``nsid`` when several."""
    entry = subsystems.get(nqn)
    if not entry:
        return None
    namespaces = entry["namespaces"]
    if nsid is not None:
        matching = [ns for ns in namespaces if ns["nsid"] == nsid]
        if matching:
            return matching[0]
        if any(ns["nsid"] is not None for ns in namespaces):
            return None
    return namespaces[0] if len(namespaces) == 1 else None


class NvmeHostIdentity(FactBase[dict[str, str | None]]):
    """
    The NVMe host identity nvme-cli and the kernel use (``/etc/nvme/hostnqn``, ``/etc/nvme/hostid``).

    .. code:: python

        {"hostnqn": "nqn.2014-08.org.nvmexpress:uuid:...", "hostid": "8c1b..."}  # None when absent
    """

    def command(self) -> str:
        return (
            "for f in hostnqn hostid; do [ -r /etc/nvme/$f ] && printf '%s\\t%s\\n' $f \"$(cat /etc/nvme/$f)\"; "
            "done; true"
        )

    @staticmethod
    def default() -> dict[str, str | None]:
        return {"hostnqn": None, "hostid": None}

    def process(self, output: list[str]) -> dict[str, str | None]:
        out = self.default()
        for line in output:
            key, _, value = line.partition("\t")
            if key in out:
                out[key] = value.strip() or None
        return out


class NvmeCliVersion(FactBase[dict | None]):
    """
    nvme-cli's and libnvme's versions (``nvme version``); None when nvme-cli is not installed.

    .. code:: python

        {"nvme": "2.4", "libnvme": "1.3", "major": 2}
    """

    def requires_command(self, *args, **kwargs) -> str:
        return "nvme"

    def command(self) -> str:
        return "nvme version"

    def process(self, output: list[str]) -> dict | None:
        nvme = libnvme = None
        for line in output:
            if m := re.match(r"^\s*nvme version (\S+)", line):
                nvme = m.group(1)
            elif m := re.match(r"^\s*libnvme version (\S+)", line):
                libnvme = m.group(1)
        if nvme is None:
            return None
        major = re.match(r"(\d+)", nvme)
        return {"nvme": nvme, "libnvme": libnvme, "major": int(major.group(1)) if major else None}
