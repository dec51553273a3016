"""Curated mutation testing of kvpod's safety-critical code (run: ``python3 -m tests.mutation``; not collected).

Each mutation is one small, realistic bug (a wrong condition, a lost step, a reordered phase) applied to a
temporary copy of the repository; the fast tests must notice it. See :mod:`tests.mutation.runner`.
"""
