"""HL7 v2 escape sequences (section 2.7) and formatted-text commands -> readable text."""
from __future__ import annotations

import re


def _hex_text(hexdigits: str) -> str:
    try:
        raw = bytes.fromhex(hexdigits)
    except ValueError:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


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
                n = int(arg) if arg.lstrip("+").isdigit() else 1
                return "\n" * max(n, 1)
            if cmd == "sk":
                n = int(arg) if arg.lstrip("+").isdigit() else 1
                return " " * max(n, 1)
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
