"""One encoder per destination: every spec or plan value that lands in a host file or a command goes through
the encoder of the program that reads it, so a value stays one value whatever its characters.

Each encoder either returns text that the receiving program reads back as exactly the given value, or raises
:class:`EncodeError` when that program cannot carry it (a newline in a systemd ``Description=``, a NUL
anywhere). Encoders do not validate a spec (``deploy.validate`` does); they hold on their own for any string.

Templates are rendered only through :func:`render`: its Jinja environment has the encoders as filters
(``| sh``, ``| unit``, ``| unit_argv``, ...) returning :class:`Encoded` text, and its ``finalize`` hook refuses
any plain string, so a raw value in a template fails the render instead of reaching a host.
"""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
import yaml

from deploy.errors import KvpodError

# Characters every destination below leaves alone: plain values keep their bytes.
_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]{1,255}")
_SYSCTL_KEY = re.compile(r"[a-z0-9_]+(\.[A-Za-z0-9_-]+)+")
IFNAMSIZ = 16


class EncodeError(KvpodError):
    """A value the destination cannot carry as one value (the message names the destination and the value)."""


class Encoded(str):
    """Text encoded for its destination: the only string a kvpod template may emit."""


def _refuse(destination: str, value: object, why: str) -> EncodeError:
    return EncodeError(f"{destination}: {value!r} {why}")


def _utf8(destination: str, text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(destination, text, "is not valid UTF-8") from None
    return text


# -- POSIX shell ------------------------------------------------------------------------------------------


def shell_word(value: object) -> Encoded:
    """One POSIX ``sh`` word that expands to exactly ``value`` (``shlex.quote``: plain words stay unquoted).

    NUL cannot be in a shell word (or any argv) and is refused."""
    text = _utf8("shell word", str(value))
    if "\0" in text:
        raise _refuse("shell word", text, "holds a NUL byte")
    return Encoded(shlex.quote(text))


def comment(value: object) -> Encoded:
    """Text for a ``#`` comment line (shell, systemd, networkd): control characters shown as ``\\xNN`` so the
    comment stays one line; everything else as it is."""
    return Encoded(_CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", str(value)))


def shell_words(values: Iterable[object]) -> Encoded:
    """Several shell words, each encoded by :func:`shell_word`, joined by spaces."""
    return Encoded(" ".join(shell_word(v) for v in values))


# -- systemd unit files -----------------------------------------------------------------------------------


def unit_value(value: object) -> Encoded:
    """A unit file setting's value (``Description=``, ``What=``, ``Where=``, ``User=``, ``Options=``).

    Specifiers are escaped (``%`` -> ``%%``). A unit file line cannot carry control characters, leading or
    trailing blanks (systemd strips them) or a trailing backslash (a line continuation): refused."""
    text = _utf8("systemd unit value", str(value))
    if _CONTROL.search(text):
        raise _refuse("systemd unit value", text, "holds a control character")
    if text != text.strip(" \t\n\r") or not text:
        raise _refuse("systemd unit value", text, "is empty or has leading or trailing blanks")
    if text.endswith("\\"):
        raise _refuse("systemd unit value", text, "ends in a backslash")
    return Encoded(text.replace("%", "%%"))


def unit_mount_options(options: Iterable[object]) -> Encoded:
    """A mount unit's ``Options=`` from a list of options: each option one item (no ``,``, not empty)."""
    items = [str(o) for o in options]
    for item in items:
        if not item or "," in item:
            raise _refuse("mount option", item, "is empty or holds a comma")
    return unit_value(",".join(items))


def unit_path(value: object) -> Encoded:
    """An absolute, normalised path for a path setting (``Where=``, ``RequiresMountsFor=``, ``EnvironmentFile=``).

    ``RequiresMountsFor=`` takes a list split at blanks and unquoted, so a path with blanks, quotes or
    backslashes is refused rather than quoted; ``%`` is escaped."""
    text = str(value)
    if not text.startswith("/") or posixpath.normpath(text) != text or text.startswith("//"):
        raise _refuse("systemd path", text, "is not an absolute normalised path")
    if re.search(r"[\s\"'\\]", text):
        raise _refuse("systemd path", text, "holds a blank, quote or backslash")
    return unit_value(text)


def unit_name(value: object) -> Encoded:
    """A unit name (``mnt-kvcache.mount``, ``sys-subsystem-net-devices-eth1.device``): already escaped by
    ``systemd-escape`` rules, so only its grammar is asserted."""
    text = str(value)
    if not _UNIT_NAME.fullmatch(text) or "." not in text:
        raise _refuse("systemd unit name", text, "is not an escaped unit name")
    return Encoded(text)


def unit_names(values: Iterable[object]) -> Encoded:
    """Unit names separated by spaces (``After=a.service b.mount``)."""
    return Encoded(" ".join(unit_name(v) for v in values))


def _unit_word(word: str) -> str:
    if _PLAIN.fullmatch(word):
        return word
    escaped = word.replace("%", "%%").replace("$", "$$")
    if "'" not in word and "\\" not in word and not _CONTROL.search(word):
        return f"'{escaped}'"
    out = []
    for ch in escaped:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _CONTROL.fullmatch(ch):
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def unit_argv(words: Iterable[object]) -> Encoded:
    """An ``ExecStart=`` command line that systemd splits back into exactly ``words`` (systemd.service(5),
    "Command lines"; systemd.syntax(7)).

    Plain words stay as they are; other words are quoted (single quotes when they hold no quote, backslash or
    control character, else double quotes with C escapes: systemd unescapes inside both), with ``%`` -> ``%%``
    (no specifier) and ``$`` -> ``$$`` (no environment expansion). A lone ``;`` is quoted, so it is never a
    command separator. The first word must be an absolute normalised path (no ``-@:+!`` prefix can slip in);
    NUL is refused."""
    argv = [_utf8("systemd command line", str(w)) for w in words]
    if not argv:
        raise _refuse("systemd command line", argv, "is empty")
    first = argv[0]
    if not first.startswith("/") or posixpath.normpath(first) != first:
        raise _refuse("systemd command line", first, "is not an absolute normalised executable path")
    for word in argv:
        if "\0" in word:
            raise _refuse("systemd command line", word, "holds a NUL byte")
    return Encoded(" ".join(_unit_word(w) for w in argv))


# -- EnvironmentFile ----------------------------------------------------------------------------------------


def env_key(key: object) -> Encoded:
    """An environment variable name (``[A-Za-z_][A-Za-z0-9_]*``)."""
    text = str(key)
    if not _ENV_KEY.fullmatch(text):
        raise _refuse("environment variable name", text, "is not a variable name")
    return Encoded(text)


def env_value(value: object) -> Encoded:
    """A value of a systemd ``EnvironmentFile=`` line (systemd.exec(5)): plain values unquoted, others in double
    quotes with ``"``, ``\\``, `````, ``$`` backslash-escaped (systemd's reader unescapes exactly these inside
    double quotes, and keeps newlines there). systemd drops a variable whose value holds a control character
    other than tab, newline and carriage return: refused."""
    text = _utf8("environment value", str(value))
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
        raise _refuse("environment value", text, "holds a control character")
    if _PLAIN.fullmatch(text):
        return Encoded(text)
    return Encoded('"' + re.sub(r'(["\\`$])', r"\\\1", text) + '"')


def env_line(key: object, value: object) -> Encoded:
    """One ``KEY=value`` line of a systemd ``EnvironmentFile=`` (no trailing newline)."""
    return Encoded(f"{env_key(key)}={env_value(value)}")


# -- YAML ---------------------------------------------------------------------------------------------------


class _PlainDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes a value shared by two keys twice rather than as an anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def yaml_document(data: Any) -> Encoded:
    """A YAML document dumped from data (safe dumper, keys in the given order, block style, no aliases)."""
    text = yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False, allow_unicode=False)
    return Encoded(text.rstrip("\n"))


# -- ssh_config ---------------------------------------------------------------------------------------------


def ssh_value(value: object, tokens: bool = False) -> Encoded:
    """One ``ssh_config`` argument that ssh reads back as exactly ``value`` (ssh_config(5)).

    Plain values stay as they are; others are double-quoted with ``"`` and ``\\`` backslash-escaped. With
    ``tokens`` (keys ssh expands ``%`` tokens and ``${VAR}`` in: ``HostName``, ``IdentityFile``,
    ``UserKnownHostsFile``, ``ControlPath``) ``%`` is doubled; ``${`` cannot be escaped there and is refused.
    A line cannot carry control characters: refused."""
    text = _utf8("ssh_config value", str(value))
    if _CONTROL.search(text) or not text:
        raise _refuse("ssh_config value", text, "is empty or holds a control character")
    if tokens:
        if "${" in text:
            raise _refuse("ssh_config value", text, "holds '${', which ssh expands")
        text = text.replace("%", "%%")
    if _PLAIN.fullmatch(text) and not text.startswith("="):  # ssh reads a leading "=" as the key's separator
        return Encoded(text)
    return Encoded('"' + re.sub(r'(["\\])', r"\\\1", text) + '"')


# -- configfs ------------------------------------------------------------------------------------------------


def configfs_name(value: object) -> str:
    """One configfs directory name (an NQN, a port id): not empty, no ``/``, not ``.`` or ``..``, no control
    character; refused otherwise (never walks out of its parent)."""
    text = str(value)
    if not text or "/" in text or text in (".", "..") or _CONTROL.search(text):
        raise _refuse("configfs name", text, "is not one directory name")
    return text


def configfs_path(root: str, *names: object) -> str:
    """``root`` joined with validated :func:`configfs_name` parts."""
    return posixpath.join(root, *(configfs_name(n) for n in names))


# -- networkd, sysctl ------------------------------------------------------------------------------------------


def interface_name(value: object) -> Encoded:
    """A Linux interface name (at most 15 bytes; no ``/``, ``:``, blank or control character; not ``.``/``..``)."""
    text = str(value)
    if (
        not text
        or len(text.encode("utf-8", "surrogatepass")) >= IFNAMSIZ
        or text in (".", "..")
        or re.search(r"[\s/:\x00-\x1f\x7f\"'\\]", text)
        or not text.isascii()
    ):
        raise _refuse("interface name", text, "is not a Linux interface name")
    return Encoded(text)


def ip_value(value: object) -> Encoded:
    """An IP address or network (``10.0.0.1``, ``10.0.0.1/24``, ``10.0.0.0/16``), as ``ipaddress`` reads it."""
    text = str(value)
    try:
        if "/" in text:
            ipaddress.ip_interface(text)
        else:
            ipaddress.ip_address(text)
    except ValueError:
        raise _refuse("IP address", text, "is not an IP address or network") from None
    return Encoded(text)


def sysctl_key(value: object) -> Encoded:
    """A sysctl key (``net.core.rmem_max``)."""
    text = str(value)
    if not _SYSCTL_KEY.fullmatch(text):
        raise _refuse("sysctl key", text, "is not a sysctl key")
    return Encoded(text)


def sysctl_value(value: object) -> Encoded:
    """A sysctl.d value (the rest of its line): no control character, no leading or trailing blank."""
    text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
    if _CONTROL.search(text) or text != text.strip() or not text:
        raise _refuse("sysctl value", text, "is not one line")
    return Encoded(text)


# -- templates ------------------------------------------------------------------------------------------------


class RawValueError(EncodeError):
    """A template emitted a value that no encoder produced."""


def _finalize(value: Any) -> Any:
    if isinstance(value, Encoded):
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and value == value):
        return value
    raise RawValueError(f"template emitted a raw {type(value).__name__} {value!r}: pass it through an encoder filter")


FILTERS = {
    "sh": shell_word,
    "comment": comment,
    "sh_words": shell_words,
    "unit": unit_value,
    "unit_path": unit_path,
    "mount_options": unit_mount_options,
    "unit_name": unit_name,
    "unit_names": unit_names,
    "unit_argv": unit_argv,
    "env_key": env_key,
    "env": env_value,
    "yaml": yaml_document,
    "ifname": interface_name,
    "ip": ip_value,
    "sysctl_key": sysctl_key,
    "sysctl_value": sysctl_value,
}


@functools.cache
def environment(root: str) -> jinja2.Environment:
    """The Jinja environment of kvpod's templates under ``root``: encoder filters, raw values refused."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def render(template_file: str | Path, /, **variables: Any) -> str:
    """Render the template file ``template_file`` with ``variables`` through the encoding environment."""
    source = Path(template_file)
    return environment(str(source.parent)).get_template(source.name).render(**variables)
