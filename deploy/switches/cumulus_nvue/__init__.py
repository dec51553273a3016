"""Switch kind ``cumulus-nvue``: NVIDIA Cumulus Linux 5.x through NVUE, one ``nv config patch`` file per switch.

The patch is the documented NVUE YAML form, a list with one ``- set:`` tree whose paths mirror the
``nv set`` commands (Cumulus Linux 5.x user guide, "NVUE CLI" and "VLAN-aware Bridge Mode"):

* ``interface <port> description <text>``, ``link mtu <n>``, ``link state up`` (YAML ``state: {up: {}}``,
  as ``nv config show`` prints it);
* ``interface <port> bridge domain <br> access <vid>`` for an untagged peer; for a tagged peer
  ``... bridge domain <br> vlan <vid>`` and ``... untagged none`` (drop untagged frames);
* ``bridge domain <br> vlan <vid>`` for every VLAN of the pod;
* ``interface vlan<vid> type svi``, ``vlan <vid>``, ``ip address <a>/<len>`` for each routed VLAN;
* ``qos roce enable on`` and ``qos roce mode lossless`` when RoCE QoS is asked for; when ``fabric.roce_qos``
  differs from that profile (priority 3, DSCP 26, ECN on), also ``qos pfc default-global switch-priority <p>``,
  ``qos mapping default-global trust l3`` and ``dscp <d> switch-priority <p>``, and
  ``qos congestion-control default-global traffic-class <p> ecn enable`` (``render.roce_tree``).

A patch only adds or changes; it never removes what an earlier run set and the plan no longer has.

Applying (:mod:`deploy.switches.cumulus_nvue.apply`): the file goes to ``/tmp/kvpod-nvue-patch.yaml``;
the applied configuration is read (``nv config show -r applied -o yaml``) and compared with the patch in
Python (``render.patch_differences``: every setting of the patch present with its value), so reading a switch
stages nothing. ``nv config patch`` and ``nv config apply -y`` run only in a real run and only when a
setting differs, so an unchanged switch sees no command.
"""
