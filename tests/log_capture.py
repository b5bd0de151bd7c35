"""Collect the log records one project domain emits during a test."""
import logging


def capture_log(domain: str):
    """Generator for fixtures: yields the list of records of `glusterfs.<domain>`."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger(f"glusterfs.{domain}")
    handler = Keep(level=logging.DEBUG)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
