"""Where IPAM's allocations live on disk: a snapshot plus an append-only journal.

    ipam.json      {"cidr", "allocations": {uid: ip}, "last", "journal": <generation>}
    ipam.journal   "# ipam journal <generation>" then one line per change:
                   "+ <uid> <ip>" allocated, "- <uid>" released, "> <old> <new>" renamed

Rewriting the whole table for every allocation and release (temp file + rename) cost
1-5 ms each on this VM's ext4 and grew with the number of pods; an append is one small
`write` whatever the table's size. Every few hundred changes (and at every load) the
journal is folded into a new snapshot, so it stays short and a load replays little.

Crash safety without fsync (as before: a power cut that could undo an append also takes
every veth and pod with it): a `write` that returned is in the page cache and survives a
killed daemon. A line counts only with its newline, so a write torn by a power cut or a
full disk is ignored; the next change then starts a fresh journal instead of appending
after the fragment. Folding writes the snapshot first (naming the next generation), then
replaces the journal with an empty one of that generation: a crash in between leaves a
journal whose generation the snapshot has outgrown, and its lines, already in the
snapshot, are not replayed a second time.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

SNAPSHOT_NAME = "ipam.json"
JOURNAL_NAME = "ipam.journal"
HEADER = "# ipam journal "
FOLD_AFTER_LINES = 512  # plus the live allocations: folding stays O(1) per change, amortised


class UnreadableState(ValueError):
    """The snapshot or a complete journal line does not parse; the message says which."""


@dataclass
class State:
    """What the files say: {uid: ip}, the address handed out last, the cidr (None when no
    snapshot names one) and whether the journal must be folded before the next append."""

    by_uid: dict[str, str] = field(default_factory=dict)
    last: str | None = None
    cidr: str | None = None
    needs_fold: bool = True


def allocated(uid: str, ip: str) -> str:
    return f"+ {_word(uid)} {_word(ip)}\n"


def released(uid: str) -> str:
    return f"- {_word(uid)}\n"


def renamed(old_uid: str, new_uid: str) -> str:
    return f"> {_word(old_uid)} {_word(new_uid)}\n"


def _word(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{text!r}: IPAM names must be non-empty and without whitespace")
    return text


class AllocationLog:
    """The two files in `state_dir`. Not thread-safe: the caller (Ipam) serialises calls."""

    def __init__(self, state_dir: Path) -> None:
        self.snapshot = Path(state_dir) / SNAPSHOT_NAME
        self.journal = Path(state_dir) / JOURNAL_NAME
        self._generation = 0
        self._lines = 0
        self._needs_fold = True

    def load(self) -> State:
        """Read the snapshot and replay the journal of the same generation; remember where
        appends go. UnreadableState for a corrupt file."""
        state, generation = read_snapshot(self.snapshot)
        self._generation = generation
        self._lines = replay_journal(self.journal, generation, state)
        self._needs_fold = state.needs_fold
        return state

    def append(self, line: str, by_uid: dict[str, str], last: str | None, cidr: str) -> None:
        """Persist one change, given the table as it is *before* it: one append, after a fold
        of that table into a new snapshot when the journal is long, missing or has a torn
        tail. If this raises, the files say what they said before the change (the caller
        then does not make it)."""
        if self._needs_fold or self._lines >= FOLD_AFTER_LINES + len(by_uid):
            self.fold(by_uid, last, cidr)
        data = line.encode()
        try:
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fold(by_uid, last, cidr)
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            written = os.write(fd, data)
        except BaseException:
            self._needs_fold = True  # a fragment may be on disk: never append after it
            raise
        finally:
            os.close(fd)
        if written != len(data):
            self._needs_fold = True
            raise OSError(f"{self.journal}: short write ({written} of {len(data)} bytes)")
        self._lines += 1

    def fold(self, by_uid: dict[str, str], last: str | None, cidr: str) -> None:
        """Write the whole table as the next generation's snapshot, then start its empty
        journal (see the module docstring for why in this order)."""
        generation = self._generation + 1
        data = {"cidr": cidr, "allocations": by_uid, "last": last, "journal": generation}
        self.snapshot.parent.mkdir(parents=True, exist_ok=True)
        _replace(self.snapshot, json.dumps(data, sort_keys=True).encode())
        self._generation = generation
        self._needs_fold = True  # until the new journal is in place
        _replace(self.journal, f"{HEADER}{generation}\n".encode())
        self._lines = 0
        self._needs_fold = False

    def remove(self) -> None:
        for path in (self.journal, self.snapshot):
            path.unlink(missing_ok=True)
        self._generation = 0
        self._lines = 0
        self._needs_fold = True


def recorded_allocations(state_dir: Path) -> dict[str, str]:
    """{uid: ip} as the files in `state_dir` say, read only (for tools and tests)."""
    state, generation = read_snapshot(Path(state_dir) / SNAPSHOT_NAME)
    replay_journal(Path(state_dir) / JOURNAL_NAME, generation, state)
    return state.by_uid


def read_snapshot(path: Path) -> tuple[State, int]:
    """(state, journal generation) from the snapshot; an absent or empty one is empty (only
    a power cut leaves it empty, and then no pod link survived either)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return State(), 0
    if not text.strip():
        return State(), 0
    try:
        data = json.loads(text)
        by_uid = data["allocations"]
        if not isinstance(by_uid, dict):
            raise TypeError("allocations is not an object")
        state = State(by_uid={str(uid): str(ip) for uid, ip in by_uid.items()},
                      last=data.get("last") or None, cidr=str(data["cidr"]))
        generation = int(data.get("journal", 0))  # a snapshot from before the journal: 0
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableState(f"{path}: unreadable IPAM state ({exc})") from exc
    return state, generation


def replay_journal(path: Path, generation: int, state: State) -> int:
    """Apply the journal's complete lines to `state` if it is of `generation`; returns how
    many it had. Sets `state.needs_fold` unless the journal can be appended to as it is."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        state.needs_fold = True
        return 0
    lines = text.split("\n")
    torn = lines.pop()  # "" when the file ends with a newline, else an unfinished write
    if not lines or not lines[0].startswith(HEADER):
        state.needs_fold = True  # not a journal we can trust to append to (torn header)
        return 0
    try:
        own = int(lines[0][len(HEADER):]) == generation
    except ValueError as exc:
        raise UnreadableState(f"{path}: bad header {lines[0]!r}") from exc
    if not own:
        state.needs_fold = True  # a fold was cut short: the snapshot already has these
        return 0
    for number, line in enumerate(lines[1:], start=2):
        _apply(line, state, f"{path}:{number}")
    state.needs_fold = bool(torn)
    return len(lines) - 1


def _apply(line: str, state: State, where: str) -> None:
    op, *args = line.split(" ")
    if op == "+" and len(args) == 2:
        state.by_uid[args[0]] = args[1]
        state.last = args[1]
    elif op == "-" and len(args) == 1:
        state.by_uid.pop(args[0], None)
    elif op == ">" and len(args) == 2:
        if args[0] in state.by_uid:
            state.by_uid[args[1]] = state.by_uid.pop(args[0])
    else:
        raise UnreadableState(f"{where}: unreadable IPAM journal line {line!r}")


def _replace(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data` (temp file + rename; a crash leaves either)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
