"""DKIM signing (RFC 6376), fast enough for a whole list.

dkimpy does the canonicalisation, header selection and tag folding: the parts where a
hand-written copy would most likely differ from what verifiers compute. Its RSA step is
pure Python (about 9 ms per signature), so the signature itself is made by the
``cryptography`` package (OpenSSL) from a key loaded once per run. The body is hashed
per message: each recipient's unsubscribe link makes each body different.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError
from ..settings import Settings

__all__ = [
    "OVERSIGNED",
    "SIGNED",
    "DkimSigner",
    "FixedHeaders",
    "dkim_signer",
    "load_private_key",
    "relaxed_lines",
]

#: Header fields signed when present, in lower case.
SIGNED = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"list-id", b"list-unsubscribe",
    b"list-unsubscribe-post", b"feedback-id", b"precedence", b"auto-submitted",
)  # fmt: skip
#: Listed in h= once more than they occur (RFC 6376 5.4.2, 8.15): a verifier then finds an
#: empty instance for the extra entry, so a second From, or an unsubscribe header added
#: to a message that had none, breaks the signature instead of riding on it.
OVERSIGNED = (b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post")

_CANONICALISATION = b"relaxed/relaxed"
#: Smaller keys are ignored by receivers (RFC 8301 3.2 requires at least 1024 bits).
_MIN_BITS = 1024
_HEADER_NAME = b"DKIM-Signature"
#: RFC 5322's recommended line length, which the signature's folding keeps to.
_LINE = 78
#: Base64 characters of b= per folded line.
_B_CHUNK = 70


@dataclass(frozen=True)
class FixedHeaders:
    """The signed header fields every message of a run shares, canonicalised and hashed
    once (:meth:`DkimSigner.fixed`): per message only its own fields are hashed."""

    names: tuple[bytes, ...]
    hashed: Any  # a hashlib sha256 object; copied, never updated


def relaxed_lines(data: bytes) -> bytes:
    """The line-by-line part of relaxed body canonicalisation (RFC 6376 3.4.4), by dkimpy.

    It never looks past a line end, so a body made of pieces that each end with CRLF
    canonicalises piece by piece: the message builder does its static pieces once per
    issue, not 40 KB per recipient (dkimpy's regular expressions take over 1 ms for it).
    """
    if b"\t" not in data and b"  " not in data and b" \r\n" not in data:
        return data  # nothing either rule would change: most values, and cheaper to see
    import dkim

    rules = dkim.canonicalization
    return bytes(rules.compress_whitespace(rules.strip_trailing_whitespace(data)))


def load_private_key(data: bytes, where: str) -> Any:
    """An RSA private key from PEM (PKCS#1 or PKCS#8), or a :class:`ConfigError` saying
    what is wrong with ``where``, never the key itself."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        # A cron job has nobody to type a passphrase.
        raise ConfigError(f"{where}: the key is encrypted; DKIM needs it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{where}: not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{where}: not an RSA key (DKIM here signs with rsa-sha256)")
    if key.key_size < _MIN_BITS:
        raise ConfigError(
            f"{where}: a {key.key_size}-bit key; receivers ignore DKIM keys under "
            f"{_MIN_BITS} bits (make one with `newsletter dkim keygen`)"
        )
    return key


class DkimSigner:
    """Signs whole messages (CRLF line ends) as ``d=domain``, ``s=selector``."""

    def __init__(self, domain: str, selector: str, key: Any) -> None:
        import dkim
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils

        self._dkim = dkim
        self.domain, self.selector = domain.encode("ascii"), selector.encode("ascii")
        self._policy = dkim.CanonicalizationPolicy.from_c_value(_CANONICALISATION)
        self._key = key
        self._padding = padding.PKCS1v15()
        self._prehashed = utils.Prehashed(hashes.SHA256())

    def header(self, message: bytes, lines: bytes | None = None) -> bytes:
        """The ``DKIM-Signature:`` field (with its CRLF) to put on top of ``message``.

        ``lines`` is the body after :func:`relaxed_lines`, when the caller has it: then
        only the header block of ``message`` is read, so the body may already be
        dot-stuffed for SMTP (the signature covers the message as delivered, unstuffed).
        """
        dkim = self._dkim
        end = message.find(b"\r\n\r\n")
        try:
            if end < 0 or (lines is None and message.count(b"\n") != message.count(b"\r\n")):
                # Not the CRLF message the builders make: let dkimpy's parser decide.
                headers, body = dkim.rfc822_parse(message)
            else:
                # Only the header block goes through the parser's line split; the body,
                # most of the bytes, is taken as it is (what the parser would return).
                headers, _ = dkim.rfc822_parse(message[: end + 4])
                body = message[end + 4 :]
        except dkim.DKIMException as exc:
            raise InputError(f"cannot DKIM-sign a message: {exc}") from None
        if lines is None:
            canonical = self._policy.canonicalize_body(body)
        else:
            rules = dkim.canonicalization
            canonical = rules.correct_empty_body(rules.strip_trailing_lines(lines))
        body_hash = hashlib.sha256(canonical).digest()
        present = [name.lower() for name, _ in headers if name.lower() in SIGNED]
        include = [*present, *OVERSIGNED]
        fields = [
            *self._tags(include, body_hash),
            # As dkimpy does: a long placeholder puts b= on a line of its own, so filling
            # it in below does not refold the tags before it.
            (b"b", b"0" * 60),
        ]
        value = dkim.fold(
            b"; ".join(b"=".join(f) for f in fields), namelen=len(_HEADER_NAME), linesep=b"\r\n"
        )
        value = dkim.RE_BTAG.sub(b"\\1", value)
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher,
            self._policy,
            self._policy.canonicalize_headers(headers),
            include,
            (_HEADER_NAME, b" " + value),
            dict(fields),
        )
        signature = self._key.sign(hasher.digest(), self._padding, self._prehashed)
        fields[-1] = (b"b", base64.b64encode(signature))
        folded: bytes = dkim.fold(
            b"; ".join(b"=".join(f) for f in fields) + b"\r\n",
            namelen=len(_HEADER_NAME),
            linesep=b"\r\n",
        )
        return _HEADER_NAME + b": " + folded

    def fixed(self, block: bytes) -> FixedHeaders | None:
        """The fields of ``block`` (whole lines, CRLF) prepared for :meth:`header_for`;
        None when a signed name repeats in it (then only the general path is right)."""
        headers, _ = self._dkim.rfc822_parse(block + b"\r\n")
        signed = [(name, value) for name, value in headers if name.lower() in SIGNED]
        names = tuple(name.lower() for name, _ in signed)
        if len(set(names)) != len(names):
            return None
        hashed = hashlib.sha256()
        for name, value in self._policy.canonicalize_headers(signed):
            hashed.update(name + b":" + value)
        return FixedHeaders(names, hashed)

    def header_for(self, fixed: FixedHeaders, own: bytes, body: Iterable[bytes]) -> bytes | None:
        """The ``DKIM-Signature:`` field for a message whose header block is ``fixed``'s
        fields followed by ``own`` (whole lines), and whose relaxed-canonical body is the
        concatenation of ``body`` (with no empty lines at its end).

        The same signature as :meth:`header` makes, without parsing, selecting and
        canonicalising the whole header block per message; the h= list names the fixed
        fields first, then the message's own, which verifiers accept in any order (RFC
        6376 5.4.2). None when a name in ``own`` repeats or is also fixed: then use
        :meth:`header`.
        """
        headers, _ = self._dkim.rfc822_parse(own + b"\r\n")
        signed = [(name, value) for name, value in headers if name.lower() in SIGNED]
        names = tuple(name.lower() for name, _ in signed)
        if len({*names, *fixed.names}) != len(names) + len(fixed.names):
            return None
        body_hash = hashlib.sha256()
        for chunk in body:
            body_hash.update(chunk)
        hashed = fixed.hashed.copy()
        for name, value in self._policy.canonicalize_headers(signed):
            hashed.update(name + b":" + value)
        tags = self._tags((*fixed.names, *names, *OVERSIGNED), body_hash.digest())
        value = b"; ".join(b"=".join(f) for f in tags) + b"; b="
        # The value has single spaces only, and folding below only turns a space into CRLF
        # + space: its relaxed form (RFC 6376 3.4.2) is the value itself.
        hashed.update(b"dkim-signature:" + value)
        signature = self._key.sign(hashed.digest(), self._padding, self._prehashed)
        # Folded from the t= tag on; the tags before it are the same for the whole run.
        start = value.index(b" t=")
        lines, width = _folded_start(value[:start])
        folded = _fold(value[start + 1 :], base64.b64encode(signature), lines, width)
        return _HEADER_NAME + b": " + folded

    def _tags(self, include: Iterable[bytes], body_hash: bytes) -> list[tuple[bytes, bytes]]:
        """Every tag but b=, in the order both paths write them: the ones that are the same
        for every message of a run first, so :meth:`header_for` folds them once."""
        return [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", _CANONICALISATION),
            (b"d", self.domain),
            (b"i", b"@" + self.domain),
            (b"q", b"dns/txt"),
            (b"s", self.selector),
            (b"h", b" : ".join(include)),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"bh", base64.b64encode(body_hash)),
        ]

    def __call__(self, message: bytes, lines: bytes | None = None) -> bytes:
        return self.header(message, lines) + message


@functools.lru_cache(maxsize=16)
def _folded_start(value: bytes) -> tuple[tuple[bytes, ...], int]:
    """The first tags of a signature folded into lines (the last one still open), and
    the open line's width: the same for every message of a run."""
    lines, width = _fold_words(value.split(b" "), [], len(_HEADER_NAME) + 1)
    return tuple(lines), width


def _fold_words(words: list[bytes], lines: list[bytes], width: int) -> tuple[list[bytes], int]:
    """``words`` added to ``lines`` (whose last line is ``width`` wide, the open one),
    breaking lines at spaces to keep them within 78 characters."""
    lines = list(lines) or [b""]
    for word in words:
        if width + 1 + len(word) > _LINE and lines[-1]:
            lines.append(word)
            width = 1 + len(word)
        else:
            lines[-1] = lines[-1] + b" " + word if lines[-1] else word
            width += 1 + len(word)
    return lines, width


def _fold(value: bytes, signature: bytes, lines: Iterable[bytes] = (), width: int = 0) -> bytes:
    """``value`` (ending in ``b=``) and the signature as header lines of at most 78
    characters, after ``lines`` (the last one open and ``width`` wide), with the CRLF that
    ends the field: breaks only at the value's spaces, and inside b=, whose folding
    whitespace verifiers remove before hashing."""
    done, width = _fold_words(value.split(b" "), list(lines), width or len(_HEADER_NAME) + 1)
    room = max(_LINE - width, 0)
    done[-1] += signature[:room]
    rest = signature[room:]
    done.extend(rest[i : i + _B_CHUNK] for i in range(0, len(rest), _B_CHUNK))
    return b"\r\n ".join(done) + b"\r\n"


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The signer ``[dkim]`` configures (its key read once), or None when DKIM is off."""
    dkim_settings = settings.dkim
    if not dkim_settings.domain:
        return None
    if not dkim_settings.selector or dkim_settings.key_file is None:
        raise ConfigError("[dkim] domain is set, so selector and key_file are needed too")
    key_path = Path(settings.path(dkim_settings.key_file))
    where = f"[dkim] key_file {key_path}"
    try:
        data = key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    return DkimSigner(dkim_settings.domain, dkim_settings.selector, load_private_key(data, where))
