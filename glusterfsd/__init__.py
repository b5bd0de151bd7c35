"""The glusterfs process: command line, daemon life, volfile, graph and xlator base."""

__version__ = "0.1.0"
