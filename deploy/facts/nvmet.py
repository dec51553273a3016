"""NVMe-oF target facts: the nvmet configfs tree (subsystems, namespaces, allowed hosts, ports)."""

from __future__ import annotations

from pyinfra.api import FactBase

from deploy.names import NVMET_ROOT

_DUMP = (
    f"R={NVMET_ROOT}\n"
    + r"""[ -d "$R" ] || exit 0
echo present
for s in "$R"/subsystems/*; do
  [ -d "$s" ] || continue
  n=${s##*/}
  printf 'subsys\t%s\t%s\n' "$n" "$(cat "$s/attr_allow_any_host")"
  for h in "$s"/allowed_hosts/*; do [ -L "$h" ] && printf 'allowed\t%s\t%s\n' "$n" "${h##*/}"; done
  for ns in "$s"/namespaces/*; do
    [ -d "$ns" ] && printf 'ns\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "${ns##*/}" "$(cat "$ns/enable")" \
      "$(cat "$ns/device_path")" "$(cat "$ns/device_uuid" 2>/dev/null)" "$(cat "$ns/device_nguid" 2>/dev/null)"
  done
done
for p in "$R"/ports/*; do
  [ -d "$p" ] || continue
  i=${p##*/}
  printf 'port\t%s\t%s\t%s\t%s\t%s\n' "$i" "$(cat "$p/addr_trtype")" "$(cat "$p/addr_traddr")" \
    "$(cat "$p/addr_trsvcid")" "$(cat "$p/addr_adrfam")"
  for l in "$p"/subsystems/*; do [ -L "$l" ] && printf 'linked\t%s\t%s\n' "$i" "${l##*/}"; done
done
for h in "$R"/hosts/*; do [ -d "$h" ] && printf 'host\t%s\n' "${h##*/}"; done
true"""
)


class NvmetConfig(FactBase[dict]):
    """
    The nvmet configfs state (``/sys/kernel/config/nvmet``); ``present`` is False when nvmet is not loaded.

    .. code:: python

        {
            "present": True,
            "subsystems": {
                "nqn...:drive1": {
                    "allow_any_host": False,
                    "allowed_hosts": ["nqn...:node1"],
                    "namespaces": {"1": {"device_path": "/srv/nvmet/drive1.img", "enable": True,
                                         "device_uuid": "…", "device_nguid": "…"}},
                },
            },
            "ports": {"1": {"trtype": "rdma", "traddr": "10.78.0.1", "trsvcid": "4420", "adrfam": "ipv4",
                            "subsystems": ["nqn...:drive1"]}},
            "hosts": ["nqn...:node1"],
        }
    """

    def command(self) -> str:
        return _DUMP

    @staticmethod
    def default() -> dict:
        return {"present": False, "subsystems": {}, "ports": {}, "hosts": []}

    def process(self, output: list[str]) -> dict:
        out = self.default()
        subsystems, ports = out["subsystems"], out["ports"]

        def subsys(nqn: str) -> dict:
            return subsystems.setdefault(nqn, {"allow_any_host": False, "allowed_hosts": [], "namespaces": {}})

        def port(pid: str) -> dict:
            return ports.setdefault(pid, {"trtype": "", "traddr": "", "trsvcid": "", "adrfam": "", "subsystems": []})

        for line in output:
            parts = line.rstrip("\n").split("\t")
            kind = parts[0].strip()
            if kind == "present":
                out["present"] = True
            elif kind == "subsys" and len(parts) >= 3:
                subsys(parts[1])["allow_any_host"] = parts[2].strip() == "1"
            elif kind == "allowed" and len(parts) >= 3:
                subsys(parts[1])["allowed_hosts"].append(parts[2])
            elif kind == "ns" and len(parts) >= 4:
                ns = {"device_path": parts[4].strip() if len(parts) > 4 else "", "enable": parts[3].strip() == "1"}
                if len(parts) > 6:
                    ns["device_uuid"] = parts[5].strip()
                    ns["device_nguid"] = parts[6].strip()
                subsys(parts[1])["namespaces"][parts[2]] = ns
            elif kind == "port" and len(parts) >= 6:
                entry = port(parts[1])
                entry.update(trtype=parts[2], traddr=parts[3], trsvcid=parts[4], adrfam=parts[5])
            elif kind == "linked" and len(parts) >= 3:
                port(parts[1])["subsystems"].append(parts[2])
            elif kind == "host" and len(parts) >= 2:
                out["hosts"].append(parts[1])
        for entry in subsystems.values():
            entry["allowed_hosts"].sort()
        for entry in ports.values():
            entry["subsystems"].sort()
        out["hosts"].sort()
        return out
