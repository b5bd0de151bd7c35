"""Run a test's workers on threads and make sure every one of them ended."""
import threading


def run_in_threads(target, arg_tuples, timeout: float = 60) -> None:
    """Start target(*args) for each args tuple, join them all, fail if any still runs."""
    threads = [threading.Thread(target=target, args=args) for args in arg_tuples]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads)
