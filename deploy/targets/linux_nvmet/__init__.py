"""Enclosure kind ``linux-nvmet``: a Linux server exporting drives through the kernel NVMe target (nvmet).

kvpod configures it over SSH with the role :mod:`roles.nvmet_target` (subsystems admitting only their node's
host NQN, ports, portal network, and a boot-time restore); its drives are block devices or sparse files
(``file_backed``).
"""
