"""Applying a Cumulus NVUE patch with pyinfra: the facts that diff it against the switch, the operation.

The patch itself and its rendering are pure, in :mod:`deploy.switches.cumulus_nvue`.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, OperationError, StringCommand, deploy, operation
from pyinfra.operations import files

from deploy.facts.snapshot import Read
from deploy.operations.reads import file_reads
from deploy.plan import SwitchPlan
from deploy.switches import current_switch, sudo_for
from deploy.switches.cumulus_nvue import DIFF_MARK, PATCH_PATH, UNSTAGED_MARK, diff_is_empty, render_nvue_patch


class NvueConfigDiff(FactBase[str]):
    """``nv config diff``: what the pending revision would change in the applied one ("" when nothing)."""

    def command(self) -> str:
        return "nv config diff"

    @staticmethod
    def default() -> str:
        return ""

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()


class NvuePatchDiff(FactBase[str | None]):
    """What ``nv config patch <path>`` would change: stage the file, ``nv config diff``, drop the staging.

    Read only while nothing else is pending (see :func:`apply_patch`): it leaves the pending revision as it
    found it (``nv config detach``). None when the patch could not be staged or diffed.
    """

    def command(self, path: str) -> str:
        return (
            f"if {shlex.join(['nv', 'config', 'patch', path])} >/dev/null 2>&1; then "
            f"echo '{DIFF_MARK}'; nv config diff; rc=$?; nv config detach >/dev/null 2>&1; exit $rc; "
            f"else echo '{UNSTAGED_MARK}'; fi"
        )

    @staticmethod
    def default() -> str | None:
        return None

    def process(self, output: list[str]) -> str | None:
        if not output or output[0].strip() != DIFF_MARK:
            return None
        return "\n".join(output[1:]).strip()


@operation()
def apply_patch(path: str = PATCH_PATH):
    """Apply the NVUE patch at ``path`` only if it changes the applied configuration.

    Refuses to run over pending changes someone else made. The patch is staged into the pending revision
    and diffed (:class:`NvuePatchDiff`); an empty diff drops the staging (``nv config detach``) and
    yields no command, a non-empty one stages the patch again and runs ``nv config apply -y``.
    """
    pending = host.get_fact(NvueConfigDiff)
    if not diff_is_empty(pending):
        raise OperationError(
            "the switch has pending NVUE changes that kvpod did not make; review them with `nv config diff`, "
            "then apply (`nv config apply`) or drop them (`nv config detach`) and run again"
        )
    diff = host.get_fact(NvuePatchDiff, path=path)
    if diff is not None and diff_is_empty(diff):
        host.noop("switch configuration already matches the plan")
        return
    yield StringCommand("nv", "config", "patch", path)
    yield StringCommand("nv", "config", "apply", "-y")


@deploy("kvpod switch (cumulus-nvue)")
def apply_switch() -> None:
    """Upload the switch's patch and apply it when it differs from the applied configuration."""
    plan = current_switch()
    sudo = sudo_for(plan)
    files.put(
        name=f"NVUE patch for {plan.name}",
        src=StringIO(render_nvue_patch(plan)),
        dest=PATCH_PATH,
        mode="644",
        _sudo=sudo,
    )
    apply_patch(name=f"Apply NVUE patch on {plan.name}", path=PATCH_PATH, _sudo=sudo)


def reads(plan: SwitchPlan) -> list:
    """What :func:`apply_switch` compares against, read in the one state read."""
    return [*file_reads(PATCH_PATH), Read.of(NvueConfigDiff)]
