"""pyinfra facts kvpod's operations read: kernel modules, RDMA links, NVMe-oF host and target state, block devices.

Each fact is a pyinfra ``FactBase``: ``command()`` prints something parseable, ``process(lines)`` turns it into
plain data (JSON-able, so fixture tests can pin it). Module names are folded (``nvme-rdma`` == ``nvme_rdma``).
"""
