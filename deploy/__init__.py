"""kvpod: declarative bring-up of GPU inference pods with an NVMe-oF LMCache disk tier."""

__version__ = "0.1.0"
