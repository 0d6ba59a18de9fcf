"""Functions run in the workers (module level so they pickle by
reference)."""
import os
import time


def noop(*_a):
    return None


def echo(b):
    return b


def spin(n):
    """Pure-Python busy loop; n is calibrated to ~0.25 s."""
    x = 0
    for i in range(n):
        x += i
    return x


def cpu_for(seconds):
    """Burn CPU for `seconds` of wall time (the 'sibling' of error_stop)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for _ in range(5000):
            n += 1
    return n


def sleep_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def fail_after(seconds):
    time.sleep(seconds)
    raise ValueError("peers.py: deliberate failure")
