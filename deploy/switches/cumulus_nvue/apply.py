"""Applying a Cumulus NVUE patch with pyinfra: the facts that read the switch, the operation.

Reading is read-only: the applied configuration is fetched (``nv config show``) and compared with the patch
in Python; nothing is staged unless a real run applies.

The patch itself and its rendering are pure, in :mod:`deploy.switches.cumulus_nvue.render`.
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, OperationError, StringCommand, deploy, operation
from pyinfra.operations import files

from deploy.facts.snapshot import Read
from deploy.operations.reads import file_reads
from deploy.plan import SwitchPlan
from deploy.switches import current_switch, sudo_for
from deploy.switches.cumulus_nvue.render import PATCH_PATH, diff_is_empty, patch_differences, render_nvue_patch


class NvueConfigDiff(FactBase[str]):
    """``nv config diff``: what the pending revision would change in the applied one ("" when nothing)."""

    def command(self) -> str:
        return "nv config diff"

    @staticmethod
    def default() -> str:
        return ""

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()


class NvueAppliedConfig(FactBase[str | None]):
    """``nv config show -r applied -o yaml``: the applied configuration, read only (None: no answer)."""

    def command(self) -> str:
        return "nv config show -r applied -o yaml"

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        return "\n".join(output)


@operation()
def apply_patch(patch: str, path: str = PATCH_PATH):
    """Apply the NVUE patch ``patch`` (uploaded at ``path``) only if it changes the applied configuration.

    Refuses to run over pending changes someone else made. Whether the patch changes anything is computed in
    Python from the applied configuration (:class:`NvueAppliedConfig`, :func:`patch_differences`), so a
    dry run, ``kvpod diff`` and ``kvpod check`` stage nothing on the switch; only a real run stages the patch
    (``nv config patch``) and applies it (``nv config apply -y``).
    """
    pending = host.get_fact(NvueConfigDiff)
    if not diff_is_empty(pending):
        raise OperationError(
            "the switch has pending NVUE changes that kvpod did not make; review them with `nv config diff`, "
            "then apply (`nv config apply`) or drop them (`nv config detach`) and run again"
        )
    applied = host.get_fact(NvueAppliedConfig)
    differences = None if applied is None else patch_differences(patch, applied)
    if differences == []:
        host.noop("switch configuration already matches the plan")
        return
    yield StringCommand("nv", "config", "patch", path)
    yield StringCommand("nv", "config", "apply", "-y")


@deploy("kvpod switch (cumulus-nvue)")
def apply_switch() -> None:
    """Upload the switch's patch and apply it when it differs from the applied configuration."""
    plan = current_switch()
    sudo = sudo_for(plan)
    patch = render_nvue_patch(plan)
    files.put(
        name=f"NVUE patch for {plan.name}",
        src=StringIO(patch),
        dest=PATCH_PATH,
        mode="644",
        _sudo=sudo,
    )
    apply_patch(name=f"Apply NVUE patch on {plan.name}", patch=patch, path=PATCH_PATH, _sudo=sudo)


def reads(plan: SwitchPlan) -> list:
    """What :func:`apply_switch` compares against, read in the one state read."""
    return [*file_reads(PATCH_PATH), Read.of(NvueConfigDiff), Read.of(NvueAppliedConfig)]
