"""setup.txt bytes -> numbered KEY=VALUE entries, problems and repair notes. Pure: no I/O here.

The reader accepts what common editors produce (see DESIGN §3 "Format") and reports every repair
it made by line number. It never puts a value in a message: values may be secrets.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from installer.errors import SeedUnreadableError

SEED_NAME = "setup.txt"


def choose_seed_name(names: Iterable[str]) -> tuple[str | None, list[str]]:
    """Pick the seed file among directory entry `names`; return it (or None) and warnings.

    `setup.txt` wins (any case); `setup.txt.txt` (Windows hiding extensions) is accepted with a
    warning; macOS AppleDouble files (`._*`) are never taken.
    """
    candidates = [n for n in names if not n.startswith("._")]
    by_lower = {n.lower(): n for n in sorted(candidates)}
    warnings: list[str] = []
    if SEED_NAME in by_lower:
        chosen = by_lower[SEED_NAME]
        if f"{SEED_NAME}.txt" in by_lower:
            warnings.append(
                f"both {chosen} and {by_lower[SEED_NAME + '.txt']} exist; using {chosen}: "
                "delete the other one so nobody edits the wrong file"
            )
        return chosen, warnings
    if f"{SEED_NAME}.txt" in by_lower:
        chosen = by_lower[f"{SEED_NAME}.txt"]
        warnings.append(
            f"using {chosen}: the editor added a second .txt (Windows hides extensions); "
            "rename it to setup.txt"
        )
        return chosen, warnings
    return None, warnings


MAX_SEED_BYTES = 64 * 1024

# Characters that editors, web pages and chat apps leave at the edges of a line or value.
_INVISIBLE_EDGE = {
    "\u00a0": "non-breaking space",
    "\u200b": "zero-width space",
    "\u200c": "zero-width non-joiner",
    "\u200d": "zero-width joiner",
    "\u2060": "word joiner",
    "\ufeff": "byte-order mark",
    "\u202f": "narrow no-break space",
    "\u2007": "figure space",
    "\u3000": "ideographic space",
    "\u0085": "next-line control",
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
    "\f": "form feed",
    "\v": "vertical tab",
}
_PLAIN_EDGE = " \t"
_STRIP_CHARS = _PLAIN_EDGE + "".join(_INVISIBLE_EDGE)

_CURLY_DOUBLE_OPEN = "\u201c\u201d\u201e"
_CURLY_DOUBLE_CLOSE = "\u201c\u201d\u201f"
_CURLY_SINGLE_OPEN = "\u2018\u2019\u201a"
_CURLY_SINGLE_CLOSE = "\u2018\u2019\u201b"
_ALL_QUOTES = "\"'" + _CURLY_DOUBLE_OPEN + _CURLY_DOUBLE_CLOSE + _CURLY_SINGLE_OPEN + "\u201b"

_KEY_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_EXPORT_RE = re.compile(r"export[ \t]+", re.IGNORECASE)
# `#KEY=value` (a value after '='): a setting left behind its comment mark.
_COMMENTED_SETTING_RE = re.compile(
    r"#+[ \t]*(?:export[ \t]+)?([A-Za-z][A-Za-z0-9_]*)[ \t]*=[ \t]*\S"
)
# A key we may repeat in a message: one short word of ASCII letters, digits and '_'. Anything
# else (a space, a colon, another script) may carry a pasted secret: `KEY secret=rest`.
_ECHOABLE_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")
# Letters of other scripts that look like Latin ones (a subset of Unicode's confusables.txt),
# so a key typed on a Cyrillic or Greek layout folds to the key it looks like. Not anyascii: it
# transliterates by sound (Cyrillic ER -> R, VE -> V, EN -> N; Greek ETA -> I, CHI -> Ch), which
# turns a look-alike into another letter. Full-width and styled letters are folded by NFKD first.
_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТУХЅІЈԁԚԜӀҮаеорсухѕіјһԛԝӏ"  # Cyrillic
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαιονρυ",  # noqa: RUF001 - Greek look-alikes are the data
    "ABEKMHOPCTYXSIJdQWIYaeopcyxsijhqwl"  # Latin, in the same order
    "ABEZHIKMNOPTYXaiovpu",
)
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_PRIVATE_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


# The byte-order marks a seed may start with (UTF-32 before UTF-16: its mark starts with
# UTF-16's), each with its codec and the words a note uses for it.
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8 with byte-order mark (Notepad/PowerShell)"),
    (codecs.BOM_UTF16_LE, "utf-16-le", 'UTF-16 (Notepad "Unicode" or PowerShell)'),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 big-endian"),
)


@dataclass(frozen=True)
class Entry:
    """One KEY=VALUE line after repairs. `key` is upper case; `value` may be a secret.

    An empty `value` means the key is listed but not set (`KEY=`). `repr` leaves the value out
    (it may be a secret, and a repr ends up in logs and tracebacks).
    """

    line: int
    key: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class Problem:
    """Something the operator must fix. `line`/`key` are None when it is about the whole file."""

    line: int | None
    key: str | None
    message: str
    hint: str | None = None
    suggests: str | None = None  # the known key a line with an unknown key probably meant


@dataclass(frozen=True)
class Note:
    """How the reader read a line (a note: the file is not changed), or a warning about the
    file when `warning` is set; `line` None = the whole file."""

    line: int | None
    message: str
    warning: bool = False


@dataclass(frozen=True)
class SeedText:
    """The result of reading setup.txt: entries in file order, what was wrong, how lines were
    read (`repairs`: notes), warnings, and the known keys filled in on comment lines (key, line)."""

    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...]
    repairs: tuple[Note, ...]
    encoding: str
    lines: tuple[str, ...] = field(repr=False)
    warnings: tuple[Note, ...] = ()
    commented: tuple[tuple[str, int], ...] = ()

    def entry(self, key: str) -> Entry | None:
        """The entry for `key`, or None when the file does not set it."""
        return next((e for e in self.entries if e.key == key), None)


def decode_seed(data: bytes) -> tuple[str, str, list[Note]]:
    """Decode seed bytes; return text, the encoding name and notes about what was assumed.

    UTF-32/UTF-16 need a byte-order mark (Notepad and PowerShell write one); otherwise UTF-8
    (BOM optional), and cp1252 as a last resort with a warning. Raises SeedUnreadableError for
    a file that is too large or not text.
    """
    if len(data) > MAX_SEED_BYTES:
        raise SeedUnreadableError(
            f"the file is {len(data):,} bytes; a setup.txt is at most {MAX_SEED_BYTES // 1024} KiB",
            "check that this is the setup.txt from the stick, not another file renamed",
        )
    notes: list[Note] = []
    for bom, codec, label in BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(codec)
            except UnicodeDecodeError as err:
                raise SeedUnreadableError(
                    f"the file starts like {label} text but is damaged at byte {err.start}",
                    "open it in a text editor and save it again as UTF-8",
                ) from None
            notes.append(Note(1, f"read as {label}; the byte-order mark was removed"))
            _refuse_binary(text)
            return text, codec, notes
    try:
        text = data.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        _refuse_binary_bytes(data)
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise SeedUnreadableError(
                "the file is neither UTF-8 nor Windows text; it does not look like a setup.txt",
                "open it in a text editor and save it as UTF-8",
            ) from None
        encoding = "cp1252"
        bad_lines = sorted({data[:i].count(b"\n") + 1 for i, b in enumerate(data) if b >= 0x80})
        where = ", ".join(str(n) for n in bad_lines[:8])
        notes.append(
            Note(
                bad_lines[0] if bad_lines else None,
                f'not UTF-8: read as Windows-1252 ("ANSI"); check the accented letters on '
                f"line(s) {where}, and save the file as UTF-8 next time",
                warning=True,
            )
        )
    _refuse_binary(text)
    return text, encoding, notes


def _refuse_binary_bytes(data: bytes) -> None:
    if b"\x00" in data:
        if data[1::2].count(0) > len(data) // 4 or data[0::2].count(0) > len(data) // 4:
            raise SeedUnreadableError(
                "the file contains NUL bytes: it looks like UTF-16 without a byte-order mark",
                "open it in a text editor and save it as UTF-8",
            )
        raise SeedUnreadableError(
            "the file contains NUL bytes: it is not a text file",
            "setup.txt must be plain text; start again from the setup.txt on a fresh stick",
        )


def _refuse_binary(text: str) -> None:
    if "\x00" in text:
        _refuse_binary_bytes(text.encode("utf-8", "replace"))
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\r\n\f\v")
    if "\x00" in text or controls > max(4, len(text) // 100):
        raise SeedUnreadableError(
            "the file is full of control characters: it is not a text file",
            "setup.txt must be plain text; start again from the setup.txt on a fresh stick",
        )


def split_lines(text: str) -> tuple[list[str], list[Note]]:
    """Split on CR, LF and CRLF only (not on U+2028 and friends); note a non-LF convention."""
    parts = re.split(r"(\r\n|\r|\n)", text)
    lines = parts[0::2]
    ends = parts[1::2]
    if lines and lines[-1] == "":
        lines.pop()
    notes: list[Note] = []
    kinds = {"\r\n": "Windows (CRLF)", "\r": "old Mac (CR)", "\n": "Unix (LF)"}
    seen = sorted({kinds[e] for e in ends})
    if len(seen) > 1:
        notes.append(Note(None, f"mixed line ends ({', '.join(seen)}); all were read"))
    elif seen and seen[0] != "Unix (LF)":
        notes.append(Note(None, f"{seen[0]} line ends read"))
    return lines, notes


def _strip_edges(text: str) -> tuple[str, list[str]]:
    """Strip spaces and invisible characters at both edges; name the invisible ones removed."""
    stripped = text.strip(_STRIP_CHARS)
    removed = [c for c in text[: len(text) - len(text.lstrip(_STRIP_CHARS))]]
    removed += [c for c in text[len(text.rstrip(_STRIP_CHARS)) :]]
    names = sorted({_INVISIBLE_EDGE[c] for c in removed if c in _INVISIBLE_EDGE})
    return stripped, names


def _unquote(value: str) -> tuple[str, str | None, bool]:
    """Remove one pair of matching quotes; return value, the repair made, and whether a lone
    quote at one edge was left (an error the caller reports)."""
    if len(value) >= 2:
        first, last = value[0], value[-1]
        if first == last and first in "\"'":
            return value[1:-1], "quotes around the value removed", False
        if first in _CURLY_DOUBLE_OPEN and last in _CURLY_DOUBLE_CLOSE:
            return (
                value[1:-1],
                "curly quotes around the value removed (TextEdit smart quotes)",
                False,
            )
        if first in _CURLY_SINGLE_OPEN and last in _CURLY_SINGLE_CLOSE:
            return (
                value[1:-1],
                "curly quotes around the value removed (TextEdit smart quotes)",
                False,
            )
    # A quote that opens without closing (or a double quote that closes without opening) is a
    # typo, not part of the value; a trailing apostrophe (James') is left alone.
    opens = bool(value) and value[0] in _ALL_QUOTES
    closes_double = bool(value) and value[-1] in '"' + _CURLY_DOUBLE_CLOSE
    lone = opens or closes_double
    return value, None, lone


def _inner_controls(value: str) -> list[str]:
    return sorted(
        {f"U+{ord(c):04X}" for c in value if unicodedata.category(c) in {"Cc", "Zl", "Zp"}}
    )


def fold_key(text: str) -> str:
    """`text` as the ASCII key it looks like: full-width and accented letters (NFKD) and
    Cyrillic/Greek look-alikes folded to Latin, upper case, other runs of characters to '_'."""
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
        text = text.translate(_LOOKALIKES)
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def _other_scripts(word: str) -> list[str]:
    """Names of the scripts of `word`'s non-ASCII letters, as people say them."""
    names = set()
    for c in word:
        if c.isascii() or not c.isalpha():
            continue
        first = unicodedata.name(c, "").split(" ")[0]
        names.add({"FULLWIDTH": "full-width", "LATIN": "accented Latin"}.get(first, first.title()))
    return sorted(names)


def suggest_key(text: str, known: Iterable[str], *, close: bool = True) -> str | None:
    """The known key a line's start probably meant; only ever a name from `known`.

    The longest run of leading words that spells a known key once folded (`OPERATOR PASSWORD`,
    `OPENROUTER_API_KEY` typed with a Cyrillic O), else (with `close`) the closest key to the first
    word alone: the words after it may be a value typed without '='.
    """
    known_list = sorted(known)
    words = [w for w in re.split(r"[\s:=]+", text) if w][:6]
    for count in range(len(words), 0, -1):
        candidate = fold_key("_".join(words[:count]))
        if candidate in known_list:
            return candidate
    if not words or not close:
        return None
    import difflib  # only for an unknown key: keep it off check's cold start

    matches = difflib.get_close_matches(fold_key(words[0]), known_list, n=1, cutoff=0.6)
    return matches[0] if matches else None


def parse_seed(data: bytes, known_keys: Iterable[str]) -> SeedText:
    """Read setup.txt bytes into entries, problems and repairs.

    `known_keys` are the upper-case keys the model accepts; others are reported with a
    "did you mean". Raises SeedUnreadableError only when the bytes are not a text file at all.
    """
    known = frozenset(known_keys)
    text, encoding, repairs = decode_seed(data)
    lines, line_notes = split_lines(text)
    repairs.extend(line_notes)
    problems: list[Problem] = []
    entries: list[Entry] = []
    first_seen: dict[str, int] = {}
    commented: dict[str, int] = {}
    in_private_key: int | None = None
    previous_key: str | None = None

    for number, raw in enumerate(lines, start=1):
        if in_private_key is not None:
            if _PRIVATE_KEY_END.search(raw):
                in_private_key = None
            continue
        if _PRIVATE_KEY_BEGIN.search(raw):
            problems.append(_private_key_problem(number))
            in_private_key = None if _PRIVATE_KEY_END.search(raw) else number
            previous_key = None
            continue
        line, invisible = _strip_edges(raw)
        if not line or line.startswith("#"):
            previous_key = None
            filled = _COMMENTED_SETTING_RE.match(line)
            if filled and filled.group(1).upper() in known:
                commented.setdefault(filled.group(1).upper(), number)
            continue
        if invisible:
            repairs.append(Note(number, f"removed {' and '.join(invisible)} at the line's edge"))
        export = _EXPORT_RE.match(line)
        if export and "=" in line[export.end() :]:
            line = line[export.end() :]
            repairs.append(Note(number, "'export ' before the key ignored"))
        if "=" not in line:
            problems.append(_no_equals_problem(number, line, previous_key, known))
            continue
        raw_key, raw_value = line.split("=", 1)
        key_text, key_invisible = _strip_edges(raw_key)
        key = key_text.upper()
        if not key:
            problems.append(Problem(number, None, "there is no key before '='", "write KEY=value"))
            continue
        if not _KEY_RE.fullmatch(key) or key not in known:
            problems.append(_unknown_key_problem(number, key_text, known))
            previous_key = None
            continue
        previous_key = key
        if key in first_seen:
            problems.append(
                Problem(
                    number,
                    key,
                    f"set twice (first on line {first_seen[key]})",
                    "keep one of the two lines and delete the other",
                )
            )
            continue
        first_seen[key] = number
        entry, entry_problems, entry_repairs = _read_value(number, key, raw_value)
        problems.extend(entry_problems)
        repairs.extend(entry_repairs)
        if key_invisible:
            repairs.append(Note(number, f"removed {' and '.join(key_invisible)} around the key"))
        if entry is not None:
            entries.append(entry)

    # A filled line still behind '#' is the commonest way a setting goes missing unnoticed
    # (only when the key is not set on another line).
    commented = {k: n for k, n in commented.items() if k not in first_seen}
    repairs.extend(
        Note(
            number,
            f"line {number} is a comment, so {key} is not set: remove the '#' at its start "
            "to use it",
            warning=True,
        )
        for key, number in commented.items()
    )
    return SeedText(
        tuple(entries),
        tuple(problems),
        tuple(n for n in repairs if not n.warning),
        encoding,
        tuple(lines),
        warnings=tuple(n for n in repairs if n.warning),
        commented=tuple(commented.items()),
    )


def _read_value(
    number: int, key: str, raw_value: str
) -> tuple[Entry | None, list[Problem], list[Note]]:
    problems: list[Problem] = []
    repairs: list[Note] = []
    if re.match(r"[ \t]+#", raw_value):
        problems.append(
            Problem(
                number,
                key,
                "the value starts with '#' after a space; setup.txt has no comments after a value",
                f"to leave {key} unset write '{key}=' alone on the line; if '#' really begins "
                "the value, remove the space after '='",
            )
        )
        return None, problems, repairs
    value, invisible = _strip_edges(raw_value)
    if invisible:
        repairs.append(Note(number, f"{key}: removed {' and '.join(invisible)} around the value"))
    value, quote_repair, lone_quote = _unquote(value)
    if quote_repair:
        repairs.append(Note(number, f"{key}: {quote_repair}"))
    if lone_quote:
        problems.append(
            Problem(
                number,
                key,
                "the value has a quote at one end only",
                "remove the stray quote, or put the whole value in quotes if the quote belongs "
                "to it",
            )
        )
        return None, problems, repairs
    controls = _inner_controls(value)
    if controls:
        problems.append(
            Problem(
                number,
                key,
                f"the value contains invisible control characters ({', '.join(controls)})",
                "type the value again instead of pasting it",
            )
        )
        return None, problems, repairs
    return Entry(number, key, value), problems, repairs


def _private_key_problem(number: int) -> Problem:
    return Problem(
        number,
        "SSH_AUTHORIZED_KEY",
        "this is a PRIVATE key; it must never be on the stick and was not read",
        "delete it from setup.txt now and put the PUBLIC key (the one-line .pub file, "
        "e.g. id_ed25519.pub) in SSH_AUTHORIZED_KEY; treat the private key as exposed",
    )


def _no_equals_problem(
    number: int, line: str, previous_key: str | None, known: frozenset[str]
) -> Problem:
    if previous_key == "SSH_AUTHORIZED_KEY" and re.fullmatch(r"[A-Za-z0-9+/=@._ -]+", line):
        return Problem(
            number,
            "SSH_AUTHORIZED_KEY",
            "the key continues on this line; a public key must be on one line",
            "join the lines of the key into one line after SSH_AUTHORIZED_KEY=",
        )
    word = re.split(r"[\s:]", line, maxsplit=1)[0]
    if word.upper() in known:
        sep = ":" if line[len(word) :].lstrip().startswith(":") else None
        hint = f"write {word.upper()}=value" + (" (with '=' instead of ':')" if sep else "")
        return Problem(number, word.upper(), "this line has no '='", hint)
    suggestion = suggest_key(line, known, close=False)
    if suggestion is not None:
        return Problem(
            number,
            None,
            "this line has no '=' and does not start with a known key",
            _did_you_mean_hint(suggestion, line),
            suggests=suggestion,
        )
    return Problem(
        number,
        None,
        "this line is not KEY=value and not a comment",
        "add the key and '=', or put '#' in front to make the line a comment",
    )


def _did_you_mean_hint(suggestion: str, line: str) -> str:
    """'did you mean KEY? … write KEY=value', naming other scripts in the line's first word."""
    first_word = re.split(r"[\s:=]+", line, maxsplit=1)[0]
    scripts = _other_scripts(first_word)
    other = (
        f"the key has letters from another script ({', '.join(scripts)}) that look like "
        "Latin ones; "
        if scripts
        else ""
    )
    return f"did you mean {suggestion}? {other}write {suggestion}=value"


def _unknown_key_problem(number: int, key_text: str, known: frozenset[str]) -> Problem:
    """A line whose key is not known. The key is repeated only when it is key-shaped; anything
    else may hold a fragment of a secret (`OPERATOR_PASSWORD Secret=rest`) and is not echoed."""
    suggestion = suggest_key(key_text, known)
    if _ECHOABLE_KEY_RE.fullmatch(key_text):
        hint = f"did you mean {suggestion}?" if suggestion else "see setup.txt.example for the keys"
        return Problem(number, key_text.upper(), "unknown key", hint, suggests=suggestion)
    if suggestion is None:
        return Problem(
            number,
            None,
            "this line does not start with a known key",
            "each line is KEY=value with a key from setup.txt.example, or a '#' comment",
        )
    return Problem(
        number,
        None,
        "this line does not start with a known key",
        _did_you_mean_hint(suggestion, key_text),
        suggests=suggestion,
    )
