"""The one bring-up pipeline: an ordered list of phases, each turning the plan into typed host jobs.

- :mod:`deploy.pipeline.jobs`: a :class:`~deploy.pipeline.jobs.HostJob` (host, connection, payload, deploy, reads,
  display name) and the builders that make them from the plan, one per phase.
- :mod:`deploy.pipeline.phases`: :data:`~deploy.pipeline.phases.PHASES` (switches, releases, targets, nodes) and how
  the survey and the apply walk it.
- :mod:`deploy.pipeline.handover`: which drives move, decided from the survey before anything changes.
- :mod:`deploy.pipeline.restarts`: the rolling vLLM restart after the nodes phase, and the restarts still due.

:mod:`deploy.orchestrate` runs the list twice per bring-up: evaluated by the survey (nothing changes), then applied.
"""
