"""Finding migration files and checking that their names and contents can be run.

Pure apart from reading the directory: no database is involved, so every
problem found here is reported before anything is written. Checksums are taken
of every file (cheap); SQL is parsed only where the caller asks (the pending
files for ``migrate``, all of them for ``verify``), because parsing costs more.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import total_ordering
from pathlib import Path
from typing import TYPE_CHECKING

from pgship.digest import sha256
from pgship.errors import InvalidMigrations, Problem

if TYPE_CHECKING:
    from pgship.sqlscript import Script

TEMPLATE_NAME = "TEMPLATE.sql"
# [0-9], not \d: \d (like str.isdigit and int()) also takes Arabic-Indic, fullwidth and other digits
_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")
# an optional .up before .sql: golang-migrate's up files run as they are (see pgship.adopt)
FILENAME_PATTERN = re.compile(
    r"^(?P<version>[0-9]+(?:\.[0-9]+)*)_(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)(?:\.up)?\.sql$"
)
_UNICODE_VERSION = re.compile(r"^\d+(?:\.\d+)*_")
ROLLBACK_DIRECTORY_NAMES = frozenset({"rollback", "rollbacks", "down", "undo", "revert", "reverts"})
NAMING_FIX = (
    "Name migration files <version>_<description>.sql, for example 017_add_orders.sql "
    "(version: digits, optionally dotted like 017.1; description: letters, digits, _ or -)."
)


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A migration version: ``040`` and ``40`` are equal, ``040.1`` sorts after ``040``."""

    text: str
    parts: tuple[int, ...] = field(compare=False, repr=False)
    key: tuple[int, ...] = field(compare=False, repr=False)  # parts without trailing zeros: 40.0 == 40

    @classmethod
    def parse(cls, text: str) -> Version:
        if text.isascii() and text.isdigit():  # the common case, "017": one part, nothing to trim
            single = (int(text),)
            return cls(text, single, single)
        if not _VERSION.fullmatch(text):
            raise ValueError(f"{text!r} is not a version (digits, optionally dotted, like 017 or 017.1)")
        parts = tuple(int(part) for part in text.split("."))
        key = list(parts)
        while len(key) > 1 and key[-1] == 0:
            key.pop()
        return cls(text, parts, tuple(key))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key == other.key

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text


def normalise_text(raw: str) -> str:
    """The text a checksum covers: no byte-order mark, ``\\n`` line endings.

    A checkout with CRLF endings (Windows, ``core.autocrlf``) is the same
    migration, not an edited one.
    """
    if raw.startswith("\ufeff"):
        raw = raw[1:]
    return raw.replace("\r\n", "\n").replace("\r", "\n")


def printable_name(name: str) -> str:
    """A file name as every output can show it: undecodable bytes and control characters escaped.

    A name read from disk may hold bytes that are not UTF-8 (kept by Python as lone surrogates,
    which would make ``--json`` output invalid) or terminal escape sequences.
    """
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode() for char in text)


def checksum_of(text: str) -> str:
    """SHA-256 hex digest of the normalised text."""
    return sha256(normalise_text(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One ``<version>_<name>.sql`` file, read and checksummed but not yet parsed.

    Slotted, with the directory shared rather than a ``Path`` per file: a release of ten
    thousand migrations stays small in memory.
    """

    version: Version
    name: str
    directory: Path
    filename: str
    text: str  # normalised
    checksum: str

    @property
    def path(self) -> Path:
        return self.directory / self.filename


@dataclass
class Discovery:
    """What a migrations directory holds: the files in order, plus warnings about what was skipped."""

    directory: Path
    migrations: list[MigrationFile]
    warnings: list[str] = field(default_factory=list)

    def by_version(self) -> dict[Version, MigrationFile]:
        return {m.version: m for m in self.migrations}

    @property
    def latest(self) -> MigrationFile | None:
        return self.migrations[-1] if self.migrations else None


def discover(directory: Path | str) -> Discovery:
    """Read every migration file in ``directory`` (not its subdirectories).

    Raises :class:`InvalidMigrations` listing *all* naming, duplicate and
    reading problems at once, so one run shows everything to fix.
    """
    discovery, problems = _read_directory(Path(directory))
    if problems:
        raise InvalidMigrations(problems)
    return discovery


def discover_and_parse(directory: Path | str) -> tuple[Discovery, dict[Version, Script]]:
    """Read and parse every migration file in ``directory`` (what ``verify`` checks).

    Raises :class:`InvalidMigrations` with every problem of every file: the naming, reading and
    duplicate problems of the directory together with the SQL problems of each file that could be
    read, so one run shows everything to fix.
    """
    discovery, problems = _read_directory(Path(directory))
    scripts, parse_problems = _parse_all(discovery.migrations)
    problems = sorted([*problems, *parse_problems], key=lambda p: (p.file or "", p.line or 0))
    if problems:
        raise InvalidMigrations(problems)
    return discovery, scripts


def _read_directory(directory: Path) -> tuple[Discovery, list[Problem]]:
    """The directory's migration files, sorted, and the problems of the others (not raised)."""
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        shown = printable_name(str(directory))
        raise InvalidMigrations(
            [
                Problem(
                    shown,
                    f"the migrations directory {what}",
                    "Pass the right path with --migrations-dir (or PGSHIP_MIGRATIONS_DIR), or run pgship "
                    "from the directory that holds docker/postgres/migrations.",
                )
            ],
            message=f"migrations directory {shown} {what}",
        )

    problems: list[Problem] = []
    warnings: list[str] = []
    found: list[MigrationFile] = []
    down_files: list[str] = []
    try:  # scandir: the directory listing already says which entries are files (no stat each)
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        raise InvalidMigrations(
            [Problem(str(directory), f"cannot list the directory: {exc.strerror}", "Check its permissions.")]
        ) from exc

    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            is_file = entry.is_file()
            is_dir = not is_file and entry.is_dir()
        except OSError:  # a symbolic link loop (ELOOP): reported below if named like a migration
            is_dir = is_file = False
        lowered = name.lower()
        if is_dir:
            if lowered in ROLLBACK_DIRECTORY_NAMES:
                warnings.append(
                    f"{name}/ ignored: pgship is forward-only and never runs down migrations; "
                    "undo a change with a new migration instead."
                )
            continue
        if not lowered.endswith(".sql") or name == TEMPLATE_NAME:
            continue
        if lowered.endswith(".down.sql"):  # golang-migrate's down files (see pgship.adopt)
            down_files.append(printable_name(name))
            continue
        match = FILENAME_PATTERN.match(name)
        unicode_version = _UNICODE_VERSION.match(name) if match is None else None
        if unicode_version and not unicode_version.group().isascii():
            problems.append(
                Problem(
                    printable_name(name),
                    "the version is not written with ASCII digits 0-9 (it has digits of another script, "
                    "such as Arabic-Indic or fullwidth ones)",
                    NAMING_FIX,
                )
            )
            continue
        if match is None:
            problems.append(
                Problem(printable_name(name), "the file name is not <version>_<description>.sql", NAMING_FIX)
            )
            continue
        if not is_file and not (entry.is_symlink() and not os.path.exists(entry.path)):
            # a FIFO or a device would block or never end (a broken link is reported as unreadable)
            problems.append(
                Problem(
                    printable_name(name),
                    "not a regular file (a pipe, socket or device), so it cannot be a migration",
                    "Replace it with a regular file holding the SQL, or remove it.",
                )
            )
            continue
        text = _read_text(entry.path, name, problems)
        if text is None:
            continue
        found.append(
            MigrationFile(
                version=Version.parse(match["version"]),
                name=match["name"],
                directory=directory,
                filename=name,
                text=text,
                checksum=sha256(text.encode("utf-8")).hexdigest(),
            )
        )

    if down_files:
        warnings.append(
            f"{len(down_files)} .down.sql file{'s' if len(down_files) > 1 else ''} ignored ({down_files[0]}"
            f"{', ...' if len(down_files) > 1 else ''}): pgship is forward-only and never runs down "
            "migrations; undo a change with a new migration instead."
        )
    problems.extend(_duplicate_problems(found))
    found.sort(key=lambda m: m.version.key)
    return Discovery(directory, found, warnings), problems


# One read of this size takes a whole migration file in the common case (a few kB): os.read costs
# half of what open() and a buffered reader do, which adds up over thousands of files on every run.
_READ_CHUNK = 1 << 16


def read_file_bytes(path: str) -> bytes:
    """The whole file at ``path``: one ``os.read`` for a small file, one buffer for a large one.

    Reads until end of file (a short read is not taken as the end), so the bytes are exactly the
    file's. A file larger than one chunk is read again from the start into a single buffer sized from
    ``fstat``, so a 50 MB migration is not held twice while its pieces are joined.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.read(fd, _READ_CHUNK)
        if not head:
            return head
        if len(head) < _READ_CHUNK:
            more = os.read(fd, _READ_CHUNK)
            if not more:
                return head
        os.lseek(fd, 0, os.SEEK_SET)
        with open(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def _read_text(path: str, name: str, problems: list[Problem]) -> str | None:
    try:
        raw = read_file_bytes(path)
    except OSError as exc:
        problems.append(
            Problem(
                name,
                f"cannot read the file: {exc.strerror or exc}",
                "Check that it exists (not a broken link) and is readable by the user running pgship.",
            )
        )
        return None
    if raw.isascii() and b"\r" not in raw and b"\x00" not in raw:
        return raw.decode("ascii")  # the common case, already normalised: skip the checks below
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(
            Problem(
                name,
                f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                "Save the file as UTF-8 (for example: iconv -f latin1 -t utf-8).",
                line=line,
            )
        )
        return None
    if "\x00" in decoded:
        offset = decoded.index("\x00")
        problems.append(
            Problem(
                name,
                f"the file contains a NUL byte (offset {offset}): PostgreSQL cannot take it, and the SQL "
                "parser would silently stop reading there",
                "Save the file as UTF-8 text; NUL bytes usually mean a UTF-16 file or pasted binary data.",
                line=decoded.count("\n", 0, offset) + 1,
            )
        )
        return None
    return normalise_text(decoded)


def _duplicate_problems(found: list[MigrationFile]) -> list[Problem]:
    if len({migration.version.key for migration in found}) == len(found):  # the common case: none
        return []
    by_version: dict[tuple[int, ...], list[MigrationFile]] = {}
    for migration in found:
        by_version.setdefault(migration.version.key, []).append(migration)
    problems = []
    for _, files in sorted(by_version.items()):
        if len(files) > 1:
            version = files[0].version
            names = ", ".join(m.filename for m in files)
            problems.append(
                Problem(
                    names,  # the location: the message does not repeat them
                    f"{len(files)} files share version {version}",
                    "Give each migration its own version: renumber the newer file(s) with `pgship new` "
                    "or by renaming to the next free version.",
                )
            )
    return problems


def next_version(discovery: Discovery) -> str:
    """The version a new migration should take: one more than the newest, same width."""
    latest = discovery.latest
    if latest is None:
        return "001"
    head = latest.version.text.split(".")[0]
    return str(int(head) + 1).zfill(len(head))


def validate_new_name(name: str) -> str | None:
    """Why ``name`` cannot be a migration description, or None when it can."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
        return (
            f"{name!r} cannot be a migration name: use letters, digits, _ and - "
            "(start with a letter or digit), for example add_orders_table"
        )
    return None


def require_parsed(migrations: list[MigrationFile]) -> dict[Version, Script]:
    """Parse ``migrations`` and raise :class:`InvalidMigrations` with every problem found."""
    scripts, problems = _parse_all(migrations)
    if problems:
        raise InvalidMigrations(problems)
    return scripts


def _parse_all(migrations: list[MigrationFile]) -> tuple[dict[Version, Script], list[Problem]]:
    if not migrations:  # nothing pending (a no-op run): the parser and its module are not even imported
        return {}, []
    from pgship.sqlscript import analyse

    problems: list[Problem] = []
    scripts: dict[Version, Script] = {}
    for migration in migrations:
        script = analyse(migration.text)
        if script.problems:
            problems.extend(
                Problem(migration.filename, p.message, p.fix, line=p.line, column=p.column)
                for p in script.problems
            )
        scripts[migration.version] = script
    return scripts, problems
