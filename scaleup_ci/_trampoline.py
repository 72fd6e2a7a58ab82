"""Exec trampoline: set rlimits in a fresh process, then exec the user's command.

Run as ``python -I -S /path/to/_trampoline.py [--data N] [--as N] [--cpu S] [--nproc N]
[--cgroup PROCS_FILE] [--lc-ctype V | --no-lc-ctype] -- command args...``. ``--cgroup`` writes
this process's pid into the given ``cgroup.procs`` file (the stage's memory cgroup). Setting
limits here, rather than in a ``preexec_fn``, is safe while the parent runs monitor threads. Only
the standard library is used and nothing is imported from the package, so the isolated, site-less
interpreter starts fast.

``--cpu S`` sets RLIMIT_CPU soft=S, hard=S+5, so the command gets SIGXCPU before SIGKILL.
Every limit is clamped to the inherited hard limit. ``--lc-ctype``/``--no-lc-ctype`` restore the
caller's LC_CTYPE, which the interpreter may have coerced to C.UTF-8 in a C locale (PEP 538).
If the command cannot be executed, a one-line message goes to stderr and the exit status is
127 (not found) or 126 (found but not executable), like a shell.
"""

import resource
import sys

try:  # the C module: ``os`` costs ~1 ms more of start-up, and its execvp imports warnings
    import posix as os
except ImportError:  # pragma: no cover - not POSIX
    import os  # type: ignore[no-redef]

try:  # the C module: ``signal`` itself imports enum, which costs ~7 ms of start-up
    import _signal as signal
except ImportError:  # pragma: no cover - other interpreters
    import signal  # type: ignore[no-redef]

CPU_HARD_EXTRA = 5
_LIMITS = {
    "--data": "RLIMIT_DATA",
    "--as": "RLIMIT_AS",
    "--cpu": "RLIMIT_CPU",
    "--nproc": "RLIMIT_NPROC",
}


def _say(message: str) -> None:
    try:
        sys.stderr.write("scaleup-ci: " + message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _setlimit(name: str, soft: int, hard: int) -> None:
    res = getattr(resource, name, None)
    if res is None:
        _say(f"warning: {name} is not available on this system; not set")
        return
    inf = resource.RLIM_INFINITY
    _cur_soft, cur_hard = resource.getrlimit(res)
    if cur_hard != inf and hard > cur_hard:
        hard = cur_hard
    if soft > hard:
        soft = hard
    try:
        resource.setrlimit(res, (soft, hard))
    except (OSError, ValueError) as exc:
        _say(f"warning: could not set {name}={soft}: {exc}")


def _die_with_parent() -> None:
    """Linux: SIGKILL this process (the stage's root) if scaleup-ci itself is killed (kill -9).

    PR_SET_PDEATHSIG survives exec; it stops an orphaned stage from running on unattended.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        # The C module directly: ``import ctypes`` (struct, types, endian checks) costs ~1.5 ms
        # more of every stage's start.
        import _ctypes

        class _Int(_ctypes._SimpleCData):
            _type_ = "i"

        class _Func(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = _Int

        class _Libc:
            _handle = _ctypes.dlopen(None, getattr(os, "RTLD_NOW", 2))  # type: ignore[arg-type]

        _Func(("prctl", _Libc))(1, 9, 0, 0, 0)  # type: ignore[arg-type]  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError, TypeError, ValueError):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
        except (OSError, AttributeError, ImportError):
            pass


def _execvp(file: str, argv: list[str]) -> None:
    """``os.execvp``: search PATH (of this process's environment) for ``file`` and exec it.

    The same search as the standard library: a name with a slash is run as is; otherwise each
    PATH entry is tried in turn (an empty one is the current directory), a missing file or
    directory moves on, and the first other error (permission denied) is the one raised.
    """
    if "/" in file:
        os.execv(file, argv)
    env = os.environ
    raw = env.get(b"PATH") if b"PATH" in env else env.get("PATH")  # type: ignore[call-overload]
    if raw is None:
        raw = "/bin:/usr/bin"
    elif isinstance(raw, bytes):
        raw = raw.decode(sys.getfilesystemencoding(), "surrogateescape")
    saved: OSError | None = None
    last: OSError = FileNotFoundError(2, "No such file or directory", file)
    for entry in raw.split(":"):
        try:
            os.execv(entry + "/" + file if entry else file, argv)
        except (FileNotFoundError, NotADirectoryError) as exc:
            last = exc
        except OSError as exc:
            last = exc
            if saved is None:
                saved = exc
    raise saved if saved is not None else last


def main(args: list[str]) -> int:
    try:
        sep = args.index("--")
    except ValueError:
        _say("trampoline: missing '--' before the command")
        return 125
    opts, argv = args[:sep], args[sep + 1 :]
    if not argv:
        _say("trampoline: no command given")
        return 125
    i = 0
    while i < len(opts):
        flag = opts[i]
        if flag == "--no-lc-ctype":
            os.unsetenv("LC_CTYPE")
            i += 1
            continue
        if i + 1 >= len(opts):
            _say(f"trampoline: {flag} needs a value")
            return 125
        value = opts[i + 1]
        i += 2
        if flag == "--lc-ctype":
            os.putenv("LC_CTYPE", value)
            continue
        if flag == "--cgroup":
            # Join the stage's memory cgroup before exec, so every descendant is inside it.
            try:
                with open(value, "w") as fh:
                    fh.write(str(os.getpid()))
            except OSError as exc:
                _say(f"warning: could not join the memory cgroup {value}: {exc}")
            continue
        name = _LIMITS.get(flag)
        if name is None:
            _say(f"trampoline: unknown option {flag}")
            return 125
        try:
            n = int(value)
        except ValueError:
            _say(f"trampoline: {flag} needs an integer, got {value!r}")
            return 125
        if n < 0:
            continue
        if flag == "--cpu":
            n = max(n, 1)
            _setlimit(name, n, n + CPU_HARD_EXTRA)
        else:
            _setlimit(name, n, n)

    _die_with_parent()
    # The interpreter ignores SIGPIPE and SIGXFSZ; an ignored signal survives exec, so restore them.
    for sig in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, sig):
            signal.signal(getattr(signal, sig), signal.SIG_DFL)
    try:
        _execvp(argv[0], argv)
    except FileNotFoundError:
        _say(f"command not found: {argv[0]}")
        return 127
    except PermissionError:
        _say(f"command is not executable (permission denied): {argv[0]}")
        return 126
    except OSError as exc:
        _say(f"cannot execute {argv[0]}: {exc.strerror or exc}")
        return 126
    return 126  # not reached: execvp does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
