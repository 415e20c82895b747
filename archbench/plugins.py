"""Plugins cannot end the program: every call into an architecture plugin runs under a guard.

A plugin here is code archbench did not ship: a ``file.py:factory`` spec (the file's import and
the factory), an architecture from another package's ``archbench.archs`` entry point and the
forward pass of the network it returns, and the import of any entry-point plugin (tasks,
metrics, ...; a failing one is logged and left out). Under :func:`plugin_call`

* ``SystemExit`` (``sys.exit(0)`` in a factory), ``GeneratorExit`` and any other
  ``BaseException``, and a ``KeyboardInterrupt`` the plugin raised itself (no Ctrl-C arrived),
  become a :class:`~archbench.errors.PluginError` naming the plugin;
* a real Ctrl-C stays a ``KeyboardInterrupt``;
* a call running longer than :func:`archbench.limits.plugin_timeout` (600 s by default,
  ``ARCHBENCH_PLUGIN_TIMEOUT``) is stopped with a :class:`PluginError` -- in the main thread, where
  signals can interrupt it (a hang inside C code that never returns to Python cannot be);
* with ``errors=True`` ordinary exceptions become a :class:`PluginError` too (a factory's
  ``ValueError`` is the plugin's fault, not archbench's); ``MemoryError``, out-of-memory errors
  and archbench's own errors pass through unchanged for their own handling.

``archbench run`` then ends with one line and exit code 2; a sweep records the job as failed and
goes on.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from archbench.errors import ArchbenchError, PluginError
from archbench.limits import PLUGIN_TIMEOUT_ENV, plugin_timeout

_state = threading.local()


class _PluginTimeout(BaseException):
    """Raised by the alarm inside a plugin call that ran too long (a BaseException, so that the
    plugin's own ``except Exception`` does not swallow it)."""


def is_plugin(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` is plugin code (not defined in the archbench package itself)."""
    module = getattr(factory, "__module__", None) or ""
    return not (module == "archbench" or module.startswith("archbench."))


@contextmanager
def _signals(timeout: int | None) -> Iterator[dict[str, bool]]:
    """In the main thread: an alarm after ``timeout`` s and a Ctrl-C handler that notes a real
    Ctrl-C; elsewhere nothing (signals are only delivered to the main thread)."""
    seen = {"ctrl_c": False}
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _PluginTimeout()

    def on_int(signum: int, frame: Any) -> None:
        seen["ctrl_c"] = True
        if callable(old_int):
            old_int(signum, frame)
        raise KeyboardInterrupt

    old_int = signal.signal(signal.SIGINT, on_int)
    old_alarm = signal.signal(signal.SIGALRM, on_alarm) if timeout else None
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    try:
        yield seen
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL if old_alarm is None else old_alarm)
        signal.signal(signal.SIGINT, signal.SIG_DFL if old_int is None else old_int)  # None: set outside Python


@contextmanager
def plugin_call(plugin: str, what: str, *, errors: bool = False) -> Iterator[None]:
    """Run the body (a call into the plugin ``plugin``: its ``what``, e.g. "factory") so that it
    cannot end the program or hang; see the module docstring. Nested calls share the outer
    call's time limit."""
    depth = getattr(_state, "depth", 0)
    if depth:
        yield  # the outermost guard converts and times
        return
    timeout = plugin_timeout()
    _state.depth = 1
    try:
        with _signals(timeout) as seen:
            yield
    except _PluginTimeout:
        raise PluginError(f"the {what} of plugin {plugin!r} ran longer than {timeout} s, the limit "
                          f"(set {PLUGIN_TIMEOUT_ENV} to change it)") from None
    except KeyboardInterrupt:
        if seen["ctrl_c"]:
            raise
        raise PluginError(f"the {what} of plugin {plugin!r} raised KeyboardInterrupt itself (no Ctrl-C was "
                          "pressed); a plugin must raise an exception, not end the program") from None
    except SystemExit as exc:
        raise PluginError(f"the {what} of plugin {plugin!r} tried to end the program (sys.exit({exc.code!r})); "
                          "a plugin must raise an exception instead") from None
    except (ArchbenchError, MemoryError):
        raise
    except Exception as exc:
        if not errors or "out of memory" in str(exc).lower():  # memory: the runner's own message
            raise
        text = " ".join(str(exc).split())[:300]
        raise PluginError(f"the {what} of plugin {plugin!r} failed: {type(exc).__name__}"
                          + (f": {text}" if text else "")) from exc
    except BaseException as exc:
        raise PluginError(f"the {what} of plugin {plugin!r} raised {type(exc).__name__} "
                          "(not an Exception); a plugin must raise an exception, not end the program") from None
    finally:
        _state.depth = 0


def guard_forward(net: Any, plugin: str) -> Any:
    """``net`` with its ``forward`` run under :func:`plugin_call` (an instance attribute, so the
    class and other networks stay as they are)."""
    forward = net.forward

    @functools.wraps(forward)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with plugin_call(plugin, "forward pass", errors=True):
            return forward(*args, **kwargs)

    net.forward = guarded
    return net


__all__ = ["guard_forward", "is_plugin", "plugin_call"]
