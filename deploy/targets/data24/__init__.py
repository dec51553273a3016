"""Enclosure kind ``data24``: a Western Digital OpenFlex Data24, configured by hand, from the sheet kvpod prints.

No public API exists for provisioning a Data24's fabric port addresses, NVMe namespaces or host access:
Western Digital publishes Ansible modules for chassis power, LEDs and firmware only. kvpod therefore does
not configure a Data24; ``kvpod target sheet`` lists every value the operator sets in the enclosure's
own management interface, and ``kvpod up`` then connects the nodes. A management client that can set
these could implement the driver's ``deploy`` from the same :class:`~deploy.plan.TargetPlan`.
"""
