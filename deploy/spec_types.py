"""The types of every host-facing value of the pod spec, each defined once: what it may hold, and a message
saying what is wrong and what would be valid. Pure; used by :mod:`deploy.spec`.

A spec is data: every value that reaches a host (a unit line, a script word, a configfs directory, an
``ssh_config`` option) is typed here so that no value can carry a second line, a shell word or a path that
walks somewhere else. Encoders still quote what they emit; these types refuse what no quoting can save.
"""

from typing import Annotated

from pydantic import WrapValidator

# The checks, by topic; names other modules import from here are re-exported.
from deploy.spec_names import IFNAME_RE as IFNAME_RE
from deploy.spec_names import (
    IFNAMSIZ,
    NETNS_MAX,
    NETNS_RE,
    NQN_PREFIX_RE,
    SWITCH_PORT_MAX,
    SWITCH_PORT_RE,
    USER_MAX,
    USER_RE,
    UUID_RE,
    check_ifname,
    check_netns,
    check_nqn_prefix,
    check_service_user,
    check_user,
    check_uuid,
)
from deploy.spec_names import NQN_MAX_BYTES as NQN_MAX_BYTES
from deploy.spec_names import NQN_RE as NQN_RE
from deploy.spec_names import PATTERN_SPEC_RE as PATTERN_SPEC_RE
from deploy.spec_names import check_nqn as check_nqn
from deploy.spec_names import check_pattern as check_pattern
from deploy.spec_names import check_switch_port as check_switch_port
from deploy.spec_names import ifname_problem as ifname_problem
from deploy.spec_paths import SYSTEM_TREES as SYSTEM_TREES
from deploy.spec_paths import (
    check_abs_path,
    check_cache_place,
    check_device_path,
    check_device_pattern,
    check_place,
    keep_secret_file,
)
from deploy.spec_paths import check_local_path as check_local_path
from deploy.spec_paths import inside as inside
from deploy.spec_text import CONTROL_RE as CONTROL_RE
from deploy.spec_text import Text as Text
from deploy.spec_text import control_in as control_in
from deploy.spec_text import control_problem as control_problem
from deploy.spec_text import plain_data_problem as plain_data_problem
from deploy.spec_text import typed_str
from deploy.spec_values import check_extra_arg, check_index_url, check_model, check_mount_option, check_version
from deploy.spec_values import subnet_problem as subnet_problem

# --- the types ----------------------------------------------------------------------------------------------

Nqn = typed_str(check_nqn, pattern=f"^{NQN_RE.pattern}$", maxLength=NQN_MAX_BYTES)
NqnPrefix = typed_str(check_nqn_prefix, pattern=f"^{NQN_PREFIX_RE.pattern}$")
Uuid = typed_str(check_uuid, pattern=f"^{UUID_RE.pattern}$")
AbsPath = typed_str(check_abs_path, pattern="^/")
PlacePath = typed_str(check_place, pattern="^/")
CachePath = typed_str(check_cache_place, pattern="^/")
DevicePath = typed_str(check_device_path, pattern="^/")
DevicePattern = typed_str(check_device_pattern, pattern="^/")
LocalPath = typed_str(check_local_path)
# A file on the machine running kvpod that holds a secret: the loader reads it (deploy.loader.read_secret_files)
SecretFilePath = Annotated[LocalPath, WrapValidator(keep_secret_file)]
UserName = typed_str(check_user, pattern=f"^{USER_RE.pattern}$", maxLength=USER_MAX)
ServiceUser = typed_str(check_service_user, pattern=f"^{USER_RE.pattern}$", maxLength=USER_MAX)
IfName = typed_str(check_ifname, pattern=f"^{IFNAME_RE.pattern}$", maxLength=IFNAMSIZ - 1)
NetnsName = typed_str(check_netns, pattern=f"^{NETNS_RE.pattern}$", maxLength=NETNS_MAX)
SwitchPort = typed_str(check_switch_port, pattern=f"^{SWITCH_PORT_RE.pattern}$", maxLength=SWITCH_PORT_MAX)
ModelId = typed_str(check_model)
ExtraArg = typed_str(check_extra_arg, minLength=1)
PipVersion = typed_str(check_version, pattern="^[0-9]")
IndexUrl = typed_str(check_index_url, pattern="^https?://")
MountOption = typed_str(check_mount_option)
