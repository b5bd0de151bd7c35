"""Parse a GlusterFS volfile into volume declarations, keeping line numbers.

The grammar is GlusterFS's (libglusterfs/src/graph.l, graph.y):

    volume NAME
        type KIND
        option KEY VALUE
        subvolumes A B ...
    end-volume

`#` starts a comment, whitespace (newlines too) is insignificant, a value may
be a "double-quoted string" with backslash escapes.  Children must be declared
before their parents and the last volume declared is the top of the graph.
Unlike GlusterFS, text between backticks is NOT run as a shell command: a
volfile is configuration, not a script.

Every error names the file and line so the operator can fix it at once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class VolfileError(Exception):
    """A volfile that cannot be used; str() is 'FILE:LINE: reason'."""

    def __init__(self, path: str, line: int, message: str, key: str | None = None):
        self.path, self.line, self.message, self.key = path, line, message, key
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


@dataclass
class VolumeDecl:
    """One `volume ... end-volume` block as written."""

    name: str
    line: int
    type: str | None = None
    type_line: int = 0
    options: dict[str, str] = field(default_factory=dict)
    option_lines: dict[str, int] = field(default_factory=dict)
    subvolumes: list[str] = field(default_factory=list)
    subvolumes_line: int = 0


@dataclass
class Volfile:
    """The parsed file: volumes in declaration order; the last one is the top."""

    path: str
    volumes: list[VolumeDecl]
    text: str

    @property
    def top(self) -> VolumeDecl:
        return self.volumes[-1]

    def volume(self, name: str) -> VolumeDecl:
        return next(v for v in self.volumes if v.name == name)


_TOKEN = re.compile(r'"((?:[^"\\\n]|\\.)*)"|([^\s"\\]+)|(")|(\\)', re.S)
_SUBVOLUMES = re.compile(r"subvolumes?", re.I)


def _tokens(text: str, path: str):
    """Yield (line, word, quoted) for each token, skipping comments."""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        pos = 0
        while pos < len(raw):
            char = raw[pos]
            if char.isspace():
                pos += 1
                continue
            if char == "#":
                break
            if char == "`":
                raise VolfileError(path, lineno, "backtick command substitution is not supported "
                                   "(write the value itself)")
            match = _TOKEN.match(raw, pos)
            if match.group(3) is not None:
                raise VolfileError(path, lineno, "unterminated quoted string")
            if match.group(4) is not None:
                raise VolfileError(path, lineno, "stray backslash")
            if match.group(1) is not None:
                value = re.sub(r"\\(.)", r"\1", match.group(1))
                yield lineno, value, True
            else:
                word = match.group(2)
                if "#" in word:  # a comment glued to a word
                    word = word.split("#", 1)[0]
                    yield lineno, word, False
                    break
                yield lineno, word, False
            pos = match.end()


_KEYWORDS = ("volume", "type", "option", "end-volume")


def parse_text(text: str, path: str = "<volfile>") -> Volfile:
    """Parse volfile text; raises VolfileError with file:line on any mistake."""
    tokens = list(_tokens(text, path))
    volumes: list[VolumeDecl] = []
    names: set[str] = set()
    current: VolumeDecl | None = None
    pos = 0

    def take(what: str, after_line: int) -> tuple[int, str, bool]:
        nonlocal pos
        if pos >= len(tokens):
            raise VolfileError(path, after_line, f"unexpected end of file: expected {what}")
        pos += 1
        return tokens[pos - 1]

    def is_keyword(token) -> bool:
        _line, word, quoted = token
        return not quoted and (word in _KEYWORDS or bool(_SUBVOLUMES.fullmatch(word)))

    while pos < len(tokens):
        lineno, word, quoted = take("a keyword", 0)
        keyword = None if quoted else word
        if current is None:
            if keyword != "volume":
                raise VolfileError(path, lineno, f"expected 'volume', found '{word}'")
            _, name, _ = take("a volume name", lineno)
            if name in names:
                raise VolfileError(path, lineno, f"volume '{name}' is declared twice")
            current = VolumeDecl(name=name, line=lineno)
        elif keyword == "type":
            if current.type is not None:
                raise VolfileError(path, lineno, f"volume '{current.name}' has two 'type' lines")
            if pos >= len(tokens) or is_keyword(tokens[pos]) or tokens[pos][0] != lineno:
                raise VolfileError(path, lineno, f"'type' of volume '{current.name}' has no value")
            _, kind, _ = take("an xlator type", lineno)
            current.type, current.type_line = kind, lineno
        elif keyword == "option":
            _, key, _ = take("an option key", lineno)
            if pos >= len(tokens) or tokens[pos][0] != lineno:
                raise VolfileError(path, lineno, f"option '{key}' has no value", key)
            _, value, _ = take(f"a value for option '{key}'", lineno)
            if key in current.options:
                raise VolfileError(path, lineno, f"option '{key}' is given twice in volume "
                                   f"'{current.name}' (first on line {current.option_lines[key]})", key)
            current.options[key] = value
            current.option_lines[key] = lineno
        elif keyword is not None and _SUBVOLUMES.fullmatch(keyword):
            if current.subvolumes_line:
                raise VolfileError(path, lineno, f"volume '{current.name}' has two 'subvolumes' lines")
            current.subvolumes_line = lineno
            while pos < len(tokens) and not is_keyword(tokens[pos]):
                sub = take("a subvolume", lineno)[1]
                if sub == current.name:
                    raise VolfileError(path, lineno, f"volume '{current.name}' lists itself as a subvolume")
                if sub not in names:
                    raise VolfileError(path, lineno, f"subvolume '{sub}' of volume '{current.name}' is not "
                                       "defined prior to usage (declare children before parents)")
                if sub in current.subvolumes:
                    raise VolfileError(path, lineno, f"subvolume '{sub}' is listed twice")
                current.subvolumes.append(sub)
            if not current.subvolumes:
                raise VolfileError(path, lineno, f"'subvolumes' of volume '{current.name}' lists nothing")
        elif keyword == "end-volume":
            _close(current, lineno, path)
            volumes.append(current)
            names.add(current.name)
            current = None
        else:
            raise VolfileError(path, lineno, f"unexpected '{word}' in volume '{current.name}' "
                               "(expected type, option, subvolumes or end-volume)")
    if current is not None:
        last_line = tokens[-1][0] if tokens else 0
        raise VolfileError(path, last_line, f"volume '{current.name}' has no 'end-volume'")
    if not volumes:
        raise VolfileError(path, 0, "no volume is declared")
    return Volfile(path=path, volumes=volumes, text=text)


def _close(current: VolumeDecl, lineno: int, path: str) -> None:
    if current.type is None:
        raise VolfileError(path, lineno, f"volume '{current.name}' has no 'type'")


def parse_file(path: str) -> Volfile:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise VolfileError(path, 0, f"cannot read the volfile: {err.strerror}") from None
    except UnicodeDecodeError:
        raise VolfileError(path, 0, "the volfile is not UTF-8 text") from None
    return parse_text(text, path)
