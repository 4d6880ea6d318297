"""cffi declarations generated from the C headers at build time: nothing restated by hand.

The headers Python binds are listed once, in BOUND_HEADERS. The C preprocessor reads them exactly as the extension's
compiler will (same include directories and macros): ``cc -E -dD`` gives their declarations with every macro
expanded, line markers saying which file each line came from, and the ``#define`` lines kept in place. From that:

- every line that came from a header of this project (the component, or ``main/`` for the demo's headers) is kept,
  grouped per header in the order of each header's first line, so each header becomes one cdef and a header
  included at the top of a bound one (tc_http.h by tc_app.h) is bound before its users; system headers are left
  to cffi, which knows their types (uint32_t, size_t, bool);
- an object-like ``#define`` with an integer value becomes ``#define NAME ...`` (the compiler supplies the value);
  function-like macros, string and initialiser macros are not bindable and are left out;
- ``__attribute__((...))`` that do not touch types or layout (format, nonnull, ...) and a few compiler keywords
  cffi's parser does not read are removed; any other attribute (packed, aligned, ...) stops the build.

What the generator cannot turn into a declaration (a function body or a static variable in a header, a layout
attribute) stops the build with the header's name, line and what to do; so does a header cffi's parser refuses.

    python3 python/tcp_core_build/cdefgen.py        # print the generated declarations, one block per header
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
COMPONENT = ROOT / "components" / "tcp_core"

# The headers Python binds, by file name. Each is looked for in SEARCH_DIRS, so a header may move between them (the
# demo's tc_app.h: include/ or main/) without touching this list. Headers they include are bound with them.
BOUND_HEADERS = (
    "tc_err.h",
    "tc_alloc.h",
    "tc_addr.h",
    "tc_loop.h",
    "tc_handle.h",
    "tc_registry.h",
    "tc_backend.h",
    "tc_sock.h",  # the private backend contract: tc_sock_global_init() brings the lwIP TAP backend up
    "tc_tcp.h",
    "tc_http.h",
    "tc_captive.h",
    "tc_ota.h",
    "tc_app.h",
    "tc_console.h",
)

# Where bound headers live; the first directory holding a name wins (searched recursively, port/ has subfolders).
SEARCH_DIRS = (COMPONENT / "include", COMPONENT / "src", COMPONENT / "port", ROOT / "main")


class CdefError(Exception):
    """A header holds something the generator cannot bind; the message names the header, the line and the fix."""


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if ROOT in path.parents else str(path)


def find_header(name: str) -> Path:
    """The path of one bound header, or CdefError naming where it was looked for."""
    for d in SEARCH_DIRS:
        if not d.is_dir():
            continue
        hits = sorted(d.rglob(name))
        if len(hits) > 1:
            listed = ", ".join(_rel(h) for h in hits)
            raise CdefError(f"{name}: found more than once ({listed}); rename one or list the one meant")
        if hits:
            return hits[0]
    where = ", ".join(_rel(d) for d in SEARCH_DIRS)
    raise CdefError(f"{name}: listed in BOUND_HEADERS (tcp_core_build/cdefgen.py) but not found under {where}")


def host_include_dirs() -> list[str]:
    """The include path of the host build, relative to the project root: the component's headers, its private
    sources, the POSIX port (tc_port.h on a Linux host), and the directory of every bound header."""
    dirs = [COMPONENT / d for d in ("include", "src", "port/os/posix")]
    for name in BOUND_HEADERS:
        d = find_header(name).parent
        if d not in dirs:
            dirs.append(d)
    return [os.path.relpath(d, ROOT) for d in dirs]


@dataclass
class HeaderCdef:
    """The generated declarations of one header."""

    path: Path
    text: str

    @property
    def name(self) -> str:
        return _rel(self.path)


_MARKER = re.compile(r'^# (\d+) "((?:[^"\\]|\\.)*)"')
_DEFINE = re.compile(r"^#define ([A-Za-z_]\w*)(\(?)(.*)$")
_INT_BODY = re.compile(r"^[\w\s()+\-*/%<>|&~^!]*$")  # numbers, names, operators, parentheses: no strings, braces
_DROP = re.compile(r"\b(__extension__|__restrict|__restrict__|__inline|__inline__)\b")


# Attributes that say nothing about types or layout: dropping them leaves the same declaration for cffi. Any other
# (packed, aligned, vector_size, mode, ...) changes what a declaration means and stops the build.
SAFE_ATTRIBUTES = frozenset(
    "format nonnull warn_unused_result deprecated unused used noreturn pure const malloc returns_nonnull "
    "access cold hot nothrow leaf sentinel visibility always_inline noinline".split()
)


def _strip_attributes(text: str, where: str) -> str:
    """Remove every __attribute__((...)) (balanced parentheses) of SAFE_ATTRIBUTES; CdefError for any other."""
    out = []
    i = 0
    for m in re.finditer(r"\b__attribute__\s*\(", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        inner = text[m.end() : j - 1].strip()[1:-1]  # inside the double parentheses
        words = re.findall(r"(?:^|,)\s*_*([A-Za-z]\w*?)_*\s*(?=\(|,|$)", re.sub(r"\([^()]*\)", "", inner))
        unsafe = [w for w in words if w not in SAFE_ATTRIBUTES]
        if unsafe or not words:
            raise CdefError(
                f"{where}: __attribute__(({inner})) changes the declaration for cffi; bind a declaration without it "
                f"(or add the attribute to SAFE_ATTRIBUTES in cdefgen.py if it does not affect types or layout)"
            )
        i = j
    out.append(text[i:])
    return "".join(out)


PROJECT_ROOTS = (COMPONENT, ROOT / "main")  # headers under these are bound; the rest (system) is cffi's


def _is_project_file(name: str, roots: tuple[Path, ...]) -> Path | None:
    if name.startswith("<"):
        return None
    p = Path(name)
    p = (ROOT / p).resolve() if not p.is_absolute() else p.resolve()
    for base in roots:
        if base in p.parents and p.suffix == ".h":
            return p
    return None


def _check_code(path: Path, lines: list[tuple[int, str]]) -> None:
    """Refuse what cannot be a cdef: a function body or a static variable at file level."""
    depth = 0
    for lineno, line in lines:
        stripped = line.strip()
        if depth == 0 and re.match(r"static\b", stripped):
            raise CdefError(
                f"{_rel(path)}:{lineno}: a static definition in a header cannot be bound "
                f"({stripped[:60]!r}); move it to a .c file and declare it in the header"
            )
        for ch in line:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
        if depth == 0 and re.search(r"\)\s*\{", line):
            raise CdefError(
                f"{_rel(path)}:{lineno}: a function body in a header cannot be bound "
                f"({stripped[:60]!r}); move it to a .c file and declare it in the header"
            )


def split(preprocessed: str, roots: tuple[Path, ...] = PROJECT_ROOTS) -> list[HeaderCdef]:
    """The project headers' own lines of ``cc -E -dD`` output, turned into one cdef per header."""
    order: list[Path] = []
    code: dict[Path, list[tuple[int, str]]] = {}
    defines: dict[Path, list[tuple[str, str]]] = {}
    current: Path | None = None
    lineno = 0
    for raw in preprocessed.splitlines():
        m = _MARKER.match(raw)
        if m:
            current = _is_project_file(m.group(2).encode().decode("unicode_escape"), roots)
            lineno = int(m.group(1))
            if current is not None and current not in code:
                code[current] = []
                defines[current] = []
            continue
        lineno += 1
        if current is None:
            continue
        if raw.strip() and current not in order:
            # A header's place is where its own first line is: after the headers it includes at its top, so the
            # types it uses are declared before it.
            order.append(current)
        if raw.startswith("#"):
            d = _DEFINE.match(raw)
            if d and not d.group(2):  # object-like macros only
                defines[current].append((d.group(1), d.group(3).strip()))
            continue  # #undef, #pragma: nothing to bind
        if raw.strip():
            code[current].append((lineno - 1, raw))

    # Which object-like macros are integers: no strings or braces, and no name of a macro that is not one.
    all_defs = {name: body for path in order for name, body in defines[path]}
    ints: dict[str, bool] = {}

    def is_int(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in ints:
            return ints[name]
        body = all_defs[name]
        ok = bool(body) and bool(_INT_BODY.match(body)) and not re.search(r"\d\.\d|\d[eE][+-]?\d", body)
        for word in re.findall(r"[A-Za-z_]\w*", body) if ok else []:
            if word in all_defs and (word in seen or not is_int(word, seen | {name})):
                ok = False
        ints[name] = ok
        return ok

    out = []
    for path in order:
        lines = [(n, _strip_attributes(line, f"{_rel(path)}:{n}")) for n, line in code[path]]
        _check_code(path, lines)
        text = _DROP.sub("", "\n".join(line for _, line in lines))
        consts = [f"#define {name} ..." for name, _ in defines[path] if is_int(name)]
        body = "\n".join([*consts, text]).strip()
        if body:
            out.append(HeaderCdef(path, body + "\n"))
    return out


def preprocess(include_dirs: list[str], macros: list[tuple[str, str | None]], extra_cflags: list[str]) -> str:
    """``cc -E -dD`` of a file that includes every bound header, with the extension's include path and macros."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tcp_core_bound_headers.c"
        src.write_text("".join(f'#include "{find_header(h).name}"\n' for h in BOUND_HEADERS))
        args = [*cc, "-E", "-dD", "-std=c11", *extra_cflags]
        args += [f"-I{d}" for d in include_dirs]
        args += [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in macros]
        res = subprocess.run([*args, str(src)], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise CdefError(f"the preprocessor failed on the bound headers ({shlex.join(args)}):\n{res.stderr}")
    return res.stdout


Macros = list[tuple[str, str | None]]


def generate(include_dirs: list[str], macros: Macros, extra_cflags: list[str]) -> list[HeaderCdef]:
    """One cdef per project header that the bound headers bring in, in include order."""
    return split(preprocess(include_dirs, macros, extra_cflags))


def main() -> int:
    try:
        cdefs = generate(host_include_dirs(), [("_GNU_SOURCE", None)], [])
    except CdefError as exc:
        print(f"tcp_core: {exc}", file=sys.stderr)
        return 1
    for c in cdefs:
        print(f"/* ---- {c.name} ---- */\n{c.text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
