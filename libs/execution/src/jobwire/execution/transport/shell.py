"""Remote shell text built only from fixed templates and ``shlex.quote``d values.

An SSH server hands the command string to the login shell, so every value a job brings (argv,
environment, paths) is quoted here, and the helper scripts are constant text that receive their
inputs as positional arguments, never spliced into the script.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from ..attempt.env import inherit_words
from .base import DirEntry, DirProbe, FileStat, TransportError

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$(?!\n)")


def _check(value: str, what: str) -> str:
    if "\0" in value:
        raise ValueError(f"{what} contains a NUL byte, which no remote command can carry")
    return value


def command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    tail: str = "",
    inherit: Sequence[str] | None = None,
) -> str:
    """The shell text that runs ``argv`` with ``env`` added, ``argv[0]`` found in the login PATH.

    With ``inherit`` the program starts from an empty environment (``env -i``) holding ``env`` and
    only the login shell's variables that ``inherit`` allows. ``tail`` is a fixed redirection
    suffix chosen by the caller (never user text).
    """
    if not argv:
        raise ValueError("argv is empty")
    prog = _check(argv[0], "argv[0]")
    if prog.startswith("-") or "=" in prog:
        raise ValueError(f"argv[0] {prog!r} would be read as an option or an assignment")
    args = " ".join(shlex.quote(_check(a, "an argument")) for a in argv[1:])
    parts: list[str] = []
    if cwd is not None:
        parts.append(f"cd {shlex.quote(_check(cwd, 'cwd'))} || exit 126;")
    if env or inherit is not None:
        assigns = [] if inherit is None else ["-i", *inherit_words(inherit)]
        for k, v in (env or {}).items():
            if not ENV_NAME.match(k):
                raise ValueError(f"{k!r} is not a valid environment variable name")
            assigns.append(shlex.quote(f"{k}={_check(v, f'env {k}')}"))
        # Resolve the program before the job's PATH applies, so a job cannot redirect helpers.
        parts.append(
            f"jw_p=$(command -v {shlex.quote(prog)}) || "
            f"{{ echo {shlex.quote(f'{prog}: not found')} >&2; exit 127; }};"
        )
        parts.append(f'exec env {" ".join(assigns)} "$jw_p" {args} {tail}'.rstrip())
    else:
        parts.append(f"exec {shlex.quote(prog)} {args} {tail}".rstrip())
    return " ".join(parts)


def script(text: str, args: Sequence[str]) -> str:
    """``sh -c TEXT sh ARGS...``: a constant script run by /bin/sh whatever the login shell is."""
    return command(["/bin/sh", "-c", text, "sh", *args])


#: One round-trip for many attempt directories: $1 max bytes read, $2 the pgid file, $3 names to
#: read and $4 names to stat (newline-separated), then the directories. Only builtins run per
#: directory; one ``find`` stats everything. Output lines: ``D i 0|1`` (exists), ``R i NAME``
#: followed by content lines (``|`` full line, ``+`` last line without newline) and ``.``,
#: ``A i 0|1`` (group alive), ``S size mtime path`` and a final ``E``.
PROBE_SCRIPT = r"""
set -f
LC_ALL=C; export LC_ALL
nl='
'
max=$1 alive=$2 reads=$3 stats=$4
shift 4
i=0
found=0
for d in "$@"; do
  if [ -d "$d" ]; then
    echo "D $i 1"
    found=1
    IFS=$nl
    for n in $reads; do
      IFS=' '
      f=$d/$n
      [ -f "$f" ] || continue
      printf 'R %s %s\n' "$i" "$n"
      got=0
      line=
      while IFS= read -r line; do
        printf '|%s\n' "$line"
        got=$((got + ${#line} + 1))
        line=
        [ "$got" -gt "$max" ] && break
      done <"$f"
      [ -n "$line" ] && printf '+%s\n' "$line"
      echo .
    done
    IFS=' '
    if [ -n "$alive" ] && [ -f "$d/$alive" ]; then
      pg=
      IFS= read -r pg <"$d/$alive"
      case $pg in
        ''|*[!0-9]*) ;;
        *) if [ "$pg" -gt 1 ]; then
             if kill -0 "-$pg" 2>/dev/null; then echo "A $i 1"; else echo "A $i 0"; fi
           fi ;;
      esac
    fi
  else
    echo "D $i 0"
  fi
  i=$((i + 1))
done
if [ "$found" = 1 ] && [ -n "$stats" ]; then
  find "$@" -mindepth 1 -maxdepth 1 -printf 'S %s %T@ %p\n' 2>/dev/null
fi
echo E
"""

#: $1 the directory, $2 the depth ("" for no limit): ``%y %s %P`` NUL-terminated, or exit 3 if missing.
LIST_SCRIPT = r"""
[ -d "$1" ] || exit 3
if [ -n "$2" ]; then
  exec find "$1" -mindepth 1 -maxdepth "$2" -printf '%y %s %P\0'
fi
exec find "$1" -mindepth 1 -printf '%y %s %P\0'
"""

#: $1 signal name, $2 process group id; the shell's own kill, so no procps is needed.
KILL_SCRIPT = 'kill -s "$1" -- "-$2" 2>/dev/null'


def probe_args(
    dirs: Sequence[str], read: Sequence[str], stat: Sequence[str], max_read: int, alive_from: str | None
) -> list[str]:
    for value in [*dirs, *read, *stat, alive_from or ""]:
        if "\n" in value or "\0" in value:
            raise ValueError(f"{value!r}: names and directories for probe cannot hold newlines")
    names = [*read, *stat, alive_from or ""]
    if any("/" in n for n in names):
        raise ValueError("probe names are file names inside each directory, without '/'")
    return [str(max_read), alive_from or "", "\n".join(read), "\n".join(stat), *dirs]


def parse_probe(
    out: bytes, dirs: Sequence[str], read: Sequence[str], stat: Sequence[str], max_read: int
) -> list[DirProbe]:
    """Turn :data:`PROBE_SCRIPT` output into results; raises TransportError if it was cut short."""
    lines = out.split(b"\n")
    if b"E" not in lines:
        raise TransportError("the probe's output was cut short")
    exists = [False] * len(dirs)
    files: list[dict[str, bytes]] = [{} for _ in dirs]
    alive: list[bool | None] = [None] * len(dirs)
    stats: list[dict[str, FileStat]] = [{} for _ in dirs]
    index = {d: i for i, d in enumerate(dirs)}
    wanted = set(stat)
    it = iter(lines)
    for raw in it:
        kind, _, rest = raw.partition(b" ")
        if kind == b"D":
            i, flag = rest.split(b" ")
            exists[int(i)] = flag == b"1"
        elif kind == b"R":
            i, name = rest.split(b" ", 1)
            content = bytearray()
            for body in it:
                if body == b".":
                    break
                content += body[1:]
                if body[:1] == b"|":
                    content += b"\n"
            files[int(i)][name.decode()] = bytes(content[:max_read])
        elif kind == b"A":
            i, flag = rest.split(b" ")
            alive[int(i)] = flag == b"1"
        elif kind == b"S":
            size, mtime, raw_path = rest.split(b" ", 2)
            parent, _, base = raw_path.decode("utf-8", "surrogateescape").rpartition("/")
            if base in wanted and parent in index:
                stats[index[parent]][base] = FileStat(int(size), float(mtime))
        elif kind == b"E":
            break
    return [
        DirProbe(d, exists[i], files[i] if exists[i] else {}, stats[i], alive[i]) for i, d in enumerate(dirs)
    ]


def parse_list(out: bytes) -> list[DirEntry]:
    kinds = {"f": "file", "d": "dir", "l": "link"}
    entries: list[DirEntry] = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        t, size, name = rec.decode("utf-8", "surrogateescape").split(" ", 2)
        kind = kinds.get(t, "other")
        entries.append(DirEntry(name, kind, int(size) if kind == "file" else 0))  # type: ignore[arg-type]
    return sorted(entries, key=lambda e: e.name)
