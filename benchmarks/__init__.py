"""Benchmarks of our NFS server beside NFS-Ganesha, measured as users measure: with fio.

Run `python -m benchmarks` (or `--quick` for a smoke); see benchmarks/README.md.
"""
