"""HL7 v2 escape sequences (section 2.7) and formatted-text commands -> readable text."""
from __future__ import annotations

import re

# Formatting commands are layout, not content: \.sp2000000\ asks for two million blank lines, and
# 200 of them in a 2.8 KB message once took the daemon to gigabytes. No report needs more than a
# few blank lines or a line's width of spaces, so the counts are capped: expansion stays linear.
MAX_SP = 10
MAX_SK = 80


def _hex_text(hexdigits: str) -> str:
    try:
        raw = bytes.fromhex(hexdigits)
    except ValueError:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _count(arg: str, cap: int) -> int:
    digits = arg.lstrip("+")
    # Never int() a long digit string: it is quadratic in its length, and the value is capped anyway.
    if not digits.isdigit():
        return 1
    return cap if len(digits) > 4 else min(max(int(digits), 1), cap)


def unescape(value: str, encoding_chars: str = "^~\\&") -> str:
    """Decode escapes in one field value, using the message's own delimiters."""
    esc = encoding_chars[2] if len(encoding_chars) > 2 else "\\"
    if esc not in value:
        return value
    comp, rep = encoding_chars[0], encoding_chars[1]
    sub = encoding_chars[3] if len(encoding_chars) > 3 else "&"
    trunc = encoding_chars[4] if len(encoding_chars) > 4 else "#"
    simple = {"F": "|", "S": comp, "T": sub, "R": rep, "E": esc, "P": trunc, "H": "", "N": ""}
    pattern = re.compile(re.escape(esc) + r"([^" + re.escape(esc) + r"]*)" + re.escape(esc))

    def repl(m: re.Match[str]) -> str:
        body = m.group(1)
        if body in simple:
            return simple[body]
        if body.startswith("X") and len(body) > 1:
            return _hex_text(body[1:])
        if body.startswith("."):
            cmd = body[1:3].lower()
            arg = body[3:].strip()
            if cmd == "br":
                return "\n"
            if cmd == "sp":
                return "\n" * _count(arg, MAX_SP)
            if cmd == "sk":
                return " " * _count(arg, MAX_SK)
            # .fi .nf .in .ti .ce: layout only
            return "\n" if cmd == "ce" else ""
        # \Cxxyy\ \Mxxyyzz\ charset switches and \Z..\ locally defined: no text
        return ""

    return pattern.sub(repl, value)


def escape(value: str, field_sep: str = "|", encoding_chars: str = "^~\\&") -> str:
    """Text -> a field value safe in the message's own delimiters."""
    esc = encoding_chars[2]
    out = value.replace(esc, f"{esc}E{esc}")
    for ch, code in ((field_sep, "F"), (encoding_chars[0], "S"), (encoding_chars[1], "R"), (encoding_chars[3], "T")):
        out = out.replace(ch, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")
