"""Switch kind ``linux-bridge``: a Linux bridge, in a network namespace on this machine or on a host over SSH.

kvpod joins existing links (veths, taps, NICs) to the bridge; it never creates or addresses them. What it
ensures, reading the live state first so that only differences become commands:

* the bridge exists (created only when missing) and is up with the switch MTU;
* every planned port is enslaved to it, up, with the switch MTU;
* where the kernel offers bridge VLAN filtering: filtering on, each tagged port carries its VLAN tagged,
  each access port carries it as untagged PVID, and no other VLAN. Without it (no
  ``/sys/class/net/<bridge>/bridge/vlan_filtering``, or the kernel refuses to turn it on) the bridge
  forwards tagged frames unchanged and kvpod says so instead of failing.

A Linux bridge does not route: SVI addresses in the plan (``routed``) are reported, not configured.
"""
