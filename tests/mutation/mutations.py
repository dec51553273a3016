"""The curated mutations: each one realistic, small bug in the code that keeps data safe and drives private.

``old`` must occur exactly once in ``file``; ``tests`` are the pytest arguments of the related fast tests (files,
node ids, ``-k`` expressions), run first; the whole fast suite runs when they miss the mutation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    old: str
    new: str
    bug: str
    tests: tuple[str, ...] = ()


STORAGE = ("tests/operations/test_operations.py", "tests/roles/test_roles_fake.py", "-k", "storage or kv_mount")
RELEASE = ("tests/unit/test_release.py", "tests/roles/test_node_release.py", "tests/roles/test_strict_fake_host.py")
ORCHESTRATION = (
    "tests/cli/test_up_wiring.py",
    "tests/unit/test_orchestrate.py",
    "tests/cli/test_cli_lock.py",
    "tests/unit/test_reassign_plan.py",
    "tests/unit/test_pipeline.py",
)
NVMET = (
    "tests/roles/test_nvmet_target.py",
    "tests/operations/test_operations.py",
    "tests/unit/test_target_drivers.py",
    "-k",
    "nvmet or target or restore or admits",
)
PODLOCK = ("tests/unit/test_podlock.py", "tests/cli/test_cli_lock.py")
CLEANER = ("tests/roles/test_lmcache_clean.py",)
ROLLOUT = (
    "tests/cli/test_rollout_wiring.py",
    "tests/cli/test_engine_rollout.py",
    "tests/unit/test_rollout.py",
    "tests/unit/test_orchestrate.py",
    "tests/unit/test_pipeline.py",
)
CLI_RUN = ("tests/cli/test_up_wiring.py", "tests/cli/test_cli_lock.py", "tests/cli/test_cli_layers.py")
SPEC_DATA = ("tests/unit/test_sinks.py", "tests/unit/test_spec_hostile.py", "tests/unit/test_secrets.py")
TOKENS = ("tests/unit/test_models_tokens.py",)
VERIFY = (
    "tests/unit/test_verify_breaks.py",
    "tests/unit/test_verify_state_read.py",
    "tests/cli/test_cli_verify.py",
    "tests/unit/test_verify_report.py",
)

STORAGE_PY = "deploy/operations/storage.py"
JOBS_PY = "deploy/pipeline/jobs.py"
PHASES_PY = "deploy/pipeline/phases.py"
HANDOVER_PY = "deploy/pipeline/handover.py"
RESTARTS_PY = "deploy/pipeline/restarts.py"
RELEASE_ROLE = "roles/node_release/__init__.py"
NVMET_PY = "deploy/operations/nvmet.py"
NVMET_ROLE = "roles/nvmet_target/__init__.py"
RESTORE = "templates/nvmet_target/kvpod-nvmet-restore.j2"
CLEAN = "templates/vllm/kvpod-lmcache-clean.j2"
RUN_PY = "deploy/cli/run.py"
ENCODE_PY = "deploy/encode.py"

MUTATIONS: tuple[Mutation, ...] = (
    # --- storage: the mkfs decision ----------------------------------------------------------------------
    Mutation(
        "storage-blkid-any-error-is-blank",
        STORAGE_PY,
        '">/dev/null 2>&1; [ $? -eq 2 ]; then",',
        '">/dev/null 2>&1; [ $? -ne 0 ]; then",',
        "the on-host re-check formats when blkid fails for any reason (ambivalent probe, I/O error), not only blank",
        STORAGE,
    ),
    Mutation(
        "storage-mkfs-always-forced",
        STORAGE_PY,
        'mkfs: list = ["mkfs.ext4"] + (["-F"] if force else [])',
        'mkfs: list = ["mkfs.ext4", "-F"]',
        "mkfs.ext4 always gets -F: a blank device's re-check no longer stands between kvpod and a filesystem",
        STORAGE,
    ),
    Mutation(
        "storage-foreign-filesystem-formatted",
        STORAGE_PY,
        "    if signature is None or wipe:\n",
        '    if signature is None or wipe or signature.get("TYPE") != "ext4":\n',
        "a device holding xfs or a partition table is formatted instead of refused",
        STORAGE,
    ),
    Mutation(
        "storage-ambivalent-probe-wiped",
        STORAGE_PY,
        'if signature is not None and "ERROR" in signature:',
        'if signature is not None and "ERROR" in signature and not wipe:',
        "--wipe formats a device whose probe is ambivalent (blkid cannot tell what is on it)",
        STORAGE,
    ),
    Mutation(
        "storage-wipe-without-stopping-users",
        STORAGE_PY,
        "for unit in stop_before_wipe or []:",
        "for unit in []:",
        "a mounted filesystem is wiped while vLLM and its mount unit still use it",
        STORAGE,
    ),
    Mutation(
        "storage-mounted-elsewhere-taken-as-ours",
        STORAGE_PY,
        'if dev and current["device"] == posixpath.basename(dev):',
        'if dev or current["device"] == posixpath.basename(dev):',
        "whatever is mounted at the KV-cache path is taken for the planned namespace",
        STORAGE,
    ),
    Mutation(
        "storage-multipath-off-first-device",
        STORAGE_PY,
        "if len(paths) > 1:",
        "if len(paths) > 2:",
        "with native multipath off, one of the namespace's two block devices is formatted and mounted",
        STORAGE,
    ),
    # --- release: who lets go of what -------------------------------------------------------------------
    Mutation(
        "release-local-drive-released",
        "deploy/release.py",
        'if "pcie" in transports:',
        'if "pcie" in transports and self.subsystems is None:',
        "a local PCIe drive is disconnected when the request names the pod's subsystems",
        RELEASE,
    ),
    Mutation(
        "release-wrong-set-difference",
        "deploy/release.py",
        "if (set(live_holders[name]) & pod) - {keep}:",
        "if set(live_holders[name]) - {keep} - pod:",
        "a node holding another node's pod drive is never asked to release it",
        RELEASE + ORCHESTRATION,
    ),
    Mutation(
        "release-spare-destination-ignored",
        "deploy/release.py",
        "if host in node_of and planned.get(subsystem) != node_of[host]",
        "if host in node_of and planned.get(subsystem) not in (None, node_of[host])",
        "a node the target still admits to a drive that becomes a spare is not treated as its holder",
        RELEASE + ORCHESTRATION,
    ),
    Mutation(
        "release-departed-drive-kept",
        "deploy/release.py",
        "pod = pod_subsystems(plan) | (pod_subsystems(applied) if applied else set())",
        "pod = pod_subsystems(plan)",
        "a drive or enclosure that left the spec is never handed back by the node holding it",
        RELEASE + ORCHESTRATION,
    ),
    Mutation(
        "node-release-vllm-not-stopped",
        RELEASE_ROLE,
        'if vllm_running or host.get_fact(File, path=f"{SYSTEMD_DIR}/{request.vllm_unit}"):',
        "if vllm_running:",
        "a vLLM pending a Restart= is not stopped before the unmount, and comes back on the released drive",
        RELEASE,
    ),
    Mutation(
        "node-release-guard-ignores-other-namespaces",
        RELEASE_ROLE,
        """'if [ -d "/sys/fs/ext4/$b" ] || grep -q "^[0-9]* [0-9]* $mm " /proc/self/mountinfo; then '""",
        """'if grep -q "^[0-9]* [0-9]* $mm " /proc/self/mountinfo; then '""",
        "the on-host disconnect guard misses an ext4 mounted in another mount namespace (a container)",
        RELEASE,
    ),
    Mutation(
        "node-release-disconnect-while-busy",
        RELEASE_ROLE,
        "if busy and context.state.is_executing:",
        "if busy and not context.state.is_executing:",
        "a namespace still mounted (a busy unmount) is disconnected anyway",
        RELEASE,
    ),
    Mutation(
        "node-release-boot-connection-kept",
        RELEASE_ROLE,
        "return request.keep_subsystem is None or persisted_subsystem() != request.keep_subsystem",
        "return request.keep_subsystem is None and persisted_subsystem() != request.keep_subsystem",
        "the released drive's boot-time connection stays: the old holder reconnects it at its next boot",
        RELEASE,
    ),
    Mutation(
        "node-release-container-mount-not-refused",
        RELEASE_ROLE,
        'elif u["ext4"] and not u["mounts"]:',
        'elif u["ext4"] and u["mounts"]:',
        "a namespace mounted only inside a container is released instead of refused",
        RELEASE,
    ),
    # --- orchestration: phase order, where --wipe goes --------------------------------------------------
    Mutation(
        "orchestrate-wipe-every-node",
        JOBS_PY,
        'WIPE_KEY: f"{n.namespace.enclosure}/{n.namespace.drive}" in opts.wipe,',
        "WIPE_KEY: bool(opts.wipe),",
        "--wipe X reformats every node's drive, not only X",
        ORCHESTRATION,
    ),
    Mutation(
        "cli-wipe-name-unchecked",
        RUN_PY,
        "    check_limit(p, limit)\n    check_selection(p, wipe or [])\n",
        "    check_limit(p, limit)\n",
        "an unknown --wipe name is accepted silently (a typo wipes nothing, or the wrong spelling goes through)",
        CLI_RUN + ORCHESTRATION,
    ),
    Mutation(
        "cli-batch-checked-late",
        RUN_PY,
        '    share = check_rollout_options(max_unavailable, batch)\n    options.output_file("--report", report)\n',
        '    share = max_unavailable or batch or "1"\n    options.output_file("--report", report)\n',
        "--batch/--max-unavailable are checked only at the rolling restart, after switches, targets and nodes "
        "were changed",
        ("tests/cli/test_cli_options.py", "-k", "batch"),
    ),
    Mutation(
        "orchestrate-targets-before-release",
        PHASES_PY,
        "    RELEASE,\n    TARGET,\n",
        "    TARGET,\n    RELEASE,\n",
        "the target admits the new holder before the old holder has released the drive",
        ORCHESTRATION,
    ),
    Mutation(
        "orchestrate-release-after-nodes",
        PHASES_PY,
        "    RELEASE,\n    TARGET,\n    NODE,\n",
        "    TARGET,\n    NODE,\n    RELEASE,\n",
        "the release runs after the nodes phase: the new holder connects while the old one still holds the drive",
        ORCHESTRATION,
    ),
    Mutation(
        "rollout-ignores-an-unhealthy-batch",
        RESTARTS_PY,
        "        if rollout.failed or any(d.status in DOWN for d in done):\n",
        "        if False:\n",
        "the rollout goes on after a batch that did not become healthy: every node ends up restarted into it",
        ROLLOUT,
    ),
    Mutation(
        "rollout-batch-over-the-limit",
        "deploy/rollout.py",
        "        if size + len(engines) > limit:\n",
        "        if size + len(engines) > limit + 1:\n",
        "a batch restarts one engine more than --max-unavailable allows",
        ROLLOUT,
    ),
    Mutation(
        "orchestrate-no-release-phase",
        PHASES_PY,
        "    SWITCH,\n    RELEASE,\n",
        "    SWITCH,\n",
        "no release phase at all: moved drives are never let go of",
        ORCHESTRATION,
    ),
    Mutation(
        "orchestrate-release-skipped-for-deploying-node",
        JOBS_PY,
        "        if name in ssh\n",
        "        if name in ssh and name not in {n.name for n in plan.nodes}\n",
        "a node that releases one drive and deploys another (a swap) skips its release",
        ORCHESTRATION,
    ),
    Mutation(
        "orchestrate-survey-hides-release",
        PHASES_PY,
        "                deploys.append(job.deploy)\n",
        "                deploys[:] = [job.deploy]\n",
        "diff/check of a releasing node that also deploys show no release",
        ORCHESTRATION,
    ),
    Mutation(
        "orchestrate-target-acl-not-consulted",
        HANDOVER_PY,
        "moved = _moved_from(applied, plan) | _admitted_elsewhere(plan, applied, pod, reach)",
        "moved = _moved_from(applied, plan)",
        "without an applied plan, an unreachable node the target still admits does not block the handover",
        ORCHESTRATION,
    ),
    Mutation(
        "orchestrate-prune-check-inverted",
        HANDOVER_PY,
        "if held_by_removed and not opts.prune:",
        "if held_by_removed and opts.prune:",
        "a node that left the spec keeps its drive while the drive is given to another node",
        ORCHESTRATION,
    ),
    Mutation(
        "orchestrate-nodes-after-failed-targets",
        PHASES_PY,
        'TARGET = Phase("target", target_jobs, checkpoint="target", shape=enclosure_results)',
        'TARGET = Phase("target", target_jobs, checkpoint="target", shape=enclosure_results, stops=False)',
        "nodes connect although the target phase failed (access control not in place)",
        ORCHESTRATION,
    ),
    Mutation(
        "pipeline-apply-reads-live",
        PHASES_PY,
        "                return list(job.reads)\n",
        "                return []\n",
        "the apply finds no host's reads: every check of a first bring-up becomes a live round trip",
        ("tests/unit/test_pipeline.py",),
    ),
    Mutation(
        "rollout-forgets-a-restart-it-never-made",
        RESTARTS_PY,
        "        elif r.name in rolled_out:\n",
        "        else:\n",
        "a restart a stopped rollout left due is forgotten by a run that did not roll it out (the node failed)",
        ROLLOUT,
    ),
    Mutation(
        "rollout-restarts-every-engine-of-a-node",
        RESTARTS_PY,
        "    return [e for e in engines if e.unit in units] or engines\n",
        "    return engines\n",
        "the rollout restarts every engine of a node when one engine's configuration changed",
        ROLLOUT,
    ),
    Mutation(
        "rollout-forgets-the-engines-a-stopped-batch-left",
        RESTARTS_PY,
        "            node.restart_units = [u for u in node.restart_units if u not in restarted]\n",
        "            node.restart_units = []\n",
        "a node whose later engines did not become healthy is remembered with none of them due",
        ROLLOUT,
    ),
    Mutation(
        "rollout-restarts-a-healthy-engine-again",
        RESTARTS_PY,
        '    return {e.unit for e in engines if (verdicts.get(e.unit) or {}).get("healthy")}\n',
        "    return set()\n",
        "an engine that came back healthy in a stopped batch is restarted again by the next run",
        ROLLOUT,
    ),
    # --- nvmet: the target's access control, live and at boot -------------------------------------------
    Mutation(
        "nvmet-new-subsystem-admits-any-host",
        NVMET_PY,
        '        yield _write("0", f"{base}/attr_allow_any_host")\n    elif',
        '        yield _write("1", f"{base}/attr_allow_any_host")\n    elif',
        "a new subsystem is created with attr_allow_any_host 1: every host on the fabric can connect",
        NVMET,
    ),
    Mutation(
        "nvmet-any-host-compared-as-text",
        NVMET_PY,
        'elif current["allow_any_host"]:',
        'elif current["allow_any_host"] == "1":',
        "a subsystem found admitting any host is left so (the fact is a bool, compared with text)",
        NVMET,
    ),
    Mutation(
        "nvmet-stale-hosts-kept",
        NVMET_PY,
        'for stale in sorted(set(current["allowed_hosts"]) - set(allowed_hosts)):',
        'for stale in sorted(set(allowed_hosts) - set(current["allowed_hosts"])):',
        "the old holder's host NQN stays admitted after a handover",
        NVMET,
    ),
    Mutation(
        "nvmet-role-spare-given-to-a-node",
        NVMET_ROLE,
        "allowed_hosts=[s.allowed_host_nqn] if s.allowed_host_nqn else [],",
        "allowed_hosts=[s.allowed_host_nqn or targets[0].subsystems[0].allowed_host_nqn],",
        "the nvmet role admits the first node to every spare drive",
        NVMET,
    ),
    Mutation(
        "restore-spare-given-to-a-node",
        NVMET_ROLE,
        '"host": configfs_name(s.allowed_host_nqn) if s.allowed_host_nqn else None,',
        '"host": configfs_name(s.allowed_host_nqn or subsystems(targets)[0][0].allowed_host_nqn),',
        "the boot-time restore script admits the first node to every spare drive",
        NVMET,
    ),
    Mutation(
        "restore-allow-any-host",
        RESTORE,
        'w 0 "$S/attr_allow_any_host"',
        'w 1 "$S/attr_allow_any_host"',
        "after a target reboot every subsystem admits any host",
        NVMET,
    ),
    Mutation(
        "restore-stale-hosts-kept",
        RESTORE,
        '*) rm "$h" ;;',
        "*) ;;",
        "after a target reboot a drive's old holder is still admitted",
        NVMET,
    ),
    # --- the pod lock ----------------------------------------------------------------------------------
    Mutation(
        "podlock-half-is-a-quorum",
        "deploy/podlock.py",
        "return count // 2 + 1",
        "return (count + 1) // 2",
        "half of the lock hosts is enough: two runs can both hold the lock",
        PODLOCK,
    ),
    Mutation(
        "podlock-held-on-any-host",
        "deploy/podlock.py",
        "if len(mine & set(s)) < quorum(len(s))]",
        "if not mine & set(s)]",
        "one lock host out of three is enough to hold the lock",
        PODLOCK,
    ),
    Mutation(
        "podlock-live-lease-seen-expired",
        "deploy/podlock.py",
        "if now >= _parse_stamp(record.expires):",
        "if now <= _parse_stamp(record.expires):",
        "a running run's lock is reported stale, so --break-lock takes it over",
        PODLOCK,
    ),
    Mutation(
        "podlock-acquire-overwrites",
        "deploy/podlock.py",
        """f'  case "${{tok:-unreadable}}" in {token}|{brk}) mv -f "$t" "$f" ;; esac\\n'""",
        """'  mv -f "$t" "$f"\\n'""",
        "taking the lock overwrites another run's lock file",
        PODLOCK,
    ),
    Mutation(
        "podlock-release-removes-any",
        "deploy/podlock.py",
        """f'grep -qF {needle} "$f" 2>/dev/null && rm -f "$f"\\n'""",
        """'rm -f "$f"\\n'""",
        "a run's release removes another run's lock",
        PODLOCK,
    ),
    Mutation(
        "podlock-confirm-ignores-refusal",
        "deploy/podlock_run.py",
        "        if not attempt.held:\n            raise _refusal(self, attempt, breaking=bool(self.break_tokens))",
        "        if not attempt.held and not attempt.others():\n"
        "            raise _refusal(self, attempt, breaking=bool(self.break_tokens))",
        "kvpod up goes on although another run holds the lock",
        PODLOCK,
    ),
    Mutation(
        "podlock-break-live-lock",
        "deploy/podlock_run.py",
        "live = {h for h in seen.others() if not stale.get(h)}",
        "live = set()",
        "--break-lock takes over the lock of a run that is still running",
        PODLOCK,
    ),
    Mutation(
        "podlock-nodes-instead-of-targets",
        "deploy/podlock.py",
        "return sorted(list(servers.values()) or [(n.name, n.ssh) for n in plan.nodes])",
        "return sorted([(n.name, n.ssh) for n in plan.nodes])",
        "a linux-nvmet pod is locked on its nodes, not on the target every run configures",
        PODLOCK,
    ),
    # --- the disk-tier cleaner ---------------------------------------------------------------------------
    Mutation(
        "clean-without-mount",
        CLEAN,
        '{{ mount_check | sh_words }} "$MOUNT" || fail "$MOUNT is not mounted"',
        '{{ mount_check | sh_words }} "$MOUNT" || true',
        "the cleaner empties the directory on the root filesystem when the KV-cache mount is missing",
        CLEANER,
    ),
    Mutation(
        "clean-crosses-filesystems",
        CLEAN,
        "find . -xdev -mindepth 1 -delete",
        "find . -mindepth 1 -delete",
        "the cleaner deletes inside another filesystem mounted below the disk tier",
        CLEANER,
    ),
    Mutation(
        "clean-follows-a-link",
        CLEAN,
        '[ ! -L "./$NAME" ] || fail "$DIR is a symbolic link"',
        '[ ! -L "./$NAME" ] || true',
        "a disk-tier directory that is a symbolic link is followed and its target emptied",
        CLEANER,
    ),
    Mutation(
        "clean-outside-the-mount",
        CLEAN,
        '"$MOUNT"/?*) ;;',
        "/?*) ;;",
        "a disk-tier directory outside the mount is emptied",
        CLEANER,
    ),
    # --- reassignment ----------------------------------------------------------------------------------
    Mutation(
        "reassign-always-wipes",
        "deploy/cli/reassign.py",
        "wipe={drive} if move.wipe else set(),",
        "wipe={drive},",
        "every kvpod reassign reformats the moved drive",
        ORCHESTRATION,
    ),
    Mutation(
        "reassign-swap-gives-both-the-drive",
        "deploy/reassignment.py",
        "assignments[old_holder] = (current.enclosure, current.slot)",
        "assignments[old_holder] = (drive.enclosure, drive.slot)",
        "--swap leaves the old holder on the moved drive: two nodes on one namespace",
        ORCHESTRATION,
    ),
    # --- check / diff exit codes -----------------------------------------------------------------------
    Mutation(
        "check-drift-exits-0",
        RUN_PY,
        'at_most=12)}", highlight=False)\n        return EXIT_INVALID',
        'at_most=12)}", highlight=False)\n        return EXIT_OK',
        "kvpod check exits 0 on drift",
        CLI_RUN,
    ),
    Mutation(
        "check-failed-hosts-ignored",
        RUN_PY,
        "    if not result.ok:\n        return EXIT_FAILED\n    if exit_on_drift and drift:",
        "    if exit_on_drift and drift:",
        "kvpod check and diff ignore failed and unreachable hosts",
        CLI_RUN,
    ),
    Mutation(
        "check-drift-counts-changed-only",
        RUN_PY,
        "drift = [h for h in result.hosts if h.status == HostStatus.WOULD_CHANGE or h.restart_pending]",
        "drift = [h for h in result.hosts if h.status == HostStatus.CHANGED or h.restart_pending]",
        "kvpod check counts no host as drifted (a read-only run never reports changed)",
        CLI_RUN,
    ),
    # --- the verify suite: checks made always-pass ----------------------------------------------------
    Mutation(
        "verify-mount-unit-persistent",
        "deploy/verify_suite/kv_mount/test_kv_mount.py",
        "if state not in PERSISTENT_UNIT_STATES:",
        "if state not in (*PERSISTENT_UNIT_STATES, state):",
        "verify passes a mount unit that does not come back at boot",
        VERIFY,
    ),
    Mutation(
        "verify-room-in-gib-not-bytes",
        "deploy/verify_suite/kv_mount/test_kv_mount.py",
        "budget = node.mount.disk_budget_gb * GIB",
        "budget = node.mount.disk_budget_gb",
        "verify compares free bytes with the budget in GiB: any mount has room",
        VERIFY,
    ),
    Mutation(
        "verify-allowed-hosts-against-itself",
        "deploy/verify_suite/target/test_nvmet_target.py",
        "wanted = {subsystem.allowed_host_nqn} if subsystem.allowed_host_nqn else set()",
        "wanted = sub.allowed_hosts if sub else set()",
        "verify compares a subsystem's allowed hosts with themselves",
        VERIFY,
    ),
    Mutation(
        "verify-any-host-against-itself",
        "deploy/verify_suite/target/test_nvmet_target.py",
        'attr_allow_any_host", "0", sub.allow_any_host',
        'attr_allow_any_host", sub.allow_any_host if sub else "0", sub.allow_any_host',
        "verify compares attr_allow_any_host with itself",
        VERIFY,
    ),
    Mutation(
        "encode-shell-word-unquoted",
        ENCODE_PY,
        "return Encoded(shlex.quote(text))",
        "return Encoded(text)",
        "a spec value is pasted into a root shell script as it is: $(...) in it runs",
        SPEC_DATA,
    ),
    Mutation(
        "encode-unit-specifiers-kept",
        ENCODE_PY,
        'return Encoded(text.replace("%", "%%"))',
        "return Encoded(text)",
        "a % in a unit value is expanded by systemd as a specifier",
        SPEC_DATA,
    ),
    Mutation(
        "encode-template-accepts-raw-text",
        ENCODE_PY,
        "    if isinstance(value, Encoded):\n        return value\n",
        "    if isinstance(value, str):\n        return value\n",
        "a template emits a spec value without any encoder",
        SPEC_DATA,
    ),
    Mutation(
        "spec-control-characters-allowed",
        "deploy/spec_base.py",
        "            if CONTROL_RE.search(value) is None:  # the common case",
        "            if True:  # the common case",
        "a newline in a free-text spec value is accepted and splits a unit line",
        SPEC_DATA,
    ),
    Mutation(
        "secret-printed",
        "deploy/secrets.py",
        "        return display(self.get_secret_value())",
        "        return self.get_secret_value()",
        "a secret is printed in plans, diffs and logs",
        SPEC_DATA,
    ),
    Mutation(
        "lmcache-files-world-readable",
        "roles/lmcache/__init__.py",
        'SECRET_FILE_MODE = "640"',
        'SECRET_FILE_MODE = "644"',
        "the LMCache files, which may carry credentials, are readable by every user of the node",
        SPEC_DATA,
    ),
    Mutation(
        "hf-token-inline-accepted",
        "deploy/loader.py",
        "        if isinstance(data.get(section), dict) and key in data[section]:",
        "        if False:",
        "a token written in the spec is refused only as an unknown key, without saying where a token goes",
        TOKENS,
    ),
    Mutation(
        "hf-token-in-the-plan",
        "deploy/plan_models.py",
        "        return {key: str(value) if isinstance(value, Secret) else value for key, value in env.items()}",
        "        return {key: value.reveal() if isinstance(value, Secret) else value for key, value in env.items()}",
        "the Hugging Face token is dumped into the plan JSON (kvpod plan --json, the applied plan, verify's plan)",
        TOKENS,
    ),
    Mutation(
        "hf-env-file-kept",
        "roles/vllm/__init__.py",
        'return [*out, absent_file_step("no Hugging Face env file", VLLM_HF_ENV_FILE, keep="hf")]',
        "return out",
        "a token removed from the spec stays on the nodes",
        TOKENS,
    ),
    Mutation(
        "hf-env-file-group-root",
        "roles/vllm/__init__.py",
        "        group=v.user,\n        env=hf_env_lines(plan),",
        '        group="root",\n        env=hf_env_lines(plan),',
        "the token's env file is not in the vLLM user's group (written with the wrong owner)",
        TOKENS,
    ),
    Mutation(
        "verify-token-file-any-mode",
        "deploy/verify_suite/verify_expect.py",
        '    return not bits & ~0o640 and owner == "root" and group == user',
        '    return owner == "root" and group == user',
        "kvpod verify passes a token file every user of the node can read",
        TOKENS,
    ),
    Mutation(
        "weights-cache-on-kv-mount",
        "deploy/validate_vllm.py",
        "    if v.weights_cache_dir and (inside(v.weights_cache_dir, mount) or inside(mount, v.weights_cache_dir)):",
        "    if v.weights_cache_dir and inside(mount, v.weights_cache_dir):",
        "the weights cache is accepted on the KV-cache mount, a drive that moves to other nodes",
        TOKENS,
    ),
    Mutation(
        "offline-without-staged-weights",
        "deploy/validate_vllm.py",
        "    if v.offline and not local and v.weights_cache_dir is None:",
        "    if False:",
        "an offline pod with a hub id and no cache is accepted: vLLM can never load the model",
        TOKENS,
    ),
)
