#!/bin/sh
# kvpod: Linux bridge fabric0 in network namespace kvpod-lab (switch fabric, pod kvpod-lab)
set -e
ip -n kvpod-lab link show fabric0 >/dev/null 2>&1 || ip -n kvpod-lab link add fabric0 type bridge
ip -n kvpod-lab link set kvl-target master fabric0 mtu 9216 up  # target iom-a p1
ip -n kvpod-lab link set kvl-node1 master fabric0 mtu 9216 up  # node1 eth1
ip -n kvpod-lab link set kvl-node2 master fabric0 mtu 9216 up  # node2 eth1
ip -n kvpod-lab link set fabric0 mtu 9216 up
# VLAN filtering where the kernel offers it; without it the bridge passes tagged frames unchanged
if ip netns exec kvpod-lab test -e /sys/class/net/fabric0/bridge/vlan_filtering && ip -n kvpod-lab link set fabric0 type bridge vlan_filtering 1; then
  bridge -n kvpod-lab vlan add vid 100 dev kvl-target
  bridge -n kvpod-lab vlan del vid 1 dev kvl-target || true
  bridge -n kvpod-lab vlan add vid 100 dev kvl-node1
  bridge -n kvpod-lab vlan del vid 1 dev kvl-node1 || true
  bridge -n kvpod-lab vlan add vid 100 dev kvl-node2
  bridge -n kvpod-lab vlan del vid 1 dev kvl-node2 || true
else
  echo 'fabric0: no VLAN filtering on this kernel; VLANs pass through untouched' >&2
fi
