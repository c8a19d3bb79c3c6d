"""Reading a model file's archive safely: members, metadata, checksums, signature."""

import collections
import errno
import hashlib
import hmac
import json
import math
import os
import stat
import warnings
import zipfile
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..exceptions import ModelFileError
from ._format import (
    _COMPRESSIONS,
    _ENCRYPTED,
    _MAX_EXPANSION_RATIO,
    _MAX_METADATA_BYTES,
    _MAX_METADATA_CONTAINERS,
    _METADATA,
    _MIN_CHECKED_EXPANSION_BYTES,
    _MODEL,
    _MODEL_CARD,
    _READABLE_MAJORS,
    _SIGNATURE,
    FORMAT_NAME,
)

#: Fewest bytes a signing key may have: a shorter one can be guessed.
MIN_KEY_BYTES = 16


def _key_bytes(key):
    if isinstance(key, str):
        # Text from the environment carries undecodable bytes as surrogates.
        key = key.encode("utf-8", "surrogateescape")
    if not isinstance(key, bytes) or not key:
        raise TypeError(f"key must be a non-empty str or bytes, got {key!r:.40}")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"key has {len(key)} bytes; a key that signs model files needs at least "
            f'{MIN_KEY_BYTES}, best 32 random ones (python -c "import secrets; '
            'print(secrets.token_urlsafe(32))").'
        )
    return key


def _sign(members, key):
    """HMAC-SHA256 over the names and SHA-256 digests of ``(name, chunks)`` pairs.

    Names are length-prefixed and digests have a fixed size, so that no two
    different sets of members give the same message.
    """
    signature = hmac.new(key, digestmod=hashlib.sha256)
    for name, chunks in sorted(members, key=lambda member: member[0]):
        content = hashlib.sha256()
        for chunk in chunks:
            content.update(chunk)
        encoded = name.encode()
        signature.update(len(encoded).to_bytes(8, "big") + encoded + content.digest())
    return signature.hexdigest()


def _pneumoclf_version():
    from .. import __version__

    return __version__


def _check_regular_file(path):
    """Refuse folders, pipes and devices before opening: reading a pipe may block."""
    mode = os.stat(os.fspath(path)).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: it is not a regular file."
        )


def is_signed(path):
    """Whether the model file at ``path`` carries a signature (checked or not).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.

    Returns
    -------
    bool
        True when it holds ``signature.hmac``: load it with its key, so that
        the signature is checked.
    """
    _check_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return _SIGNATURE in archive.namelist()
    except zipfile.BadZipFile as error:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file (not a valid zip archive: {error})."
        ) from error


def read_model_card(path, *, key=None):
    """The model card a model file carries, checked as :func:`load_model` checks.

    Nothing is rebuilt and TensorFlow runs nothing: the archive, its format, its
    checksums and, with a ``key``, its signature are checked, then the card is
    returned.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save_model`.
    key : str, bytes or None, default=None
        As for :func:`load_model`.

    Returns
    -------
    str or None
        The Markdown given to ``save_model(..., model_card=...)``; None when the
        file carries none (files of format 2.1 and older never do).

    Raises
    ------
    ModelFileError
        As :func:`load_model`, for a file that is not a valid model file, is
        damaged, or is not signed with ``key``; also for a card that is not
        UTF-8.
    """
    path = Path(path)
    metadata, model_bytes, card_bytes = _read_archive(path, key)
    _check_format(metadata, path)
    _check_checksum(metadata, model_bytes, path)
    _check_card_checksum(metadata, card_bytes, path)
    if card_bytes is None:
        return None
    try:
        return card_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its {_MODEL_CARD} is "
            f"not UTF-8 ({error})."
        ) from None


def _read_archive(path, key):
    """Return the parsed metadata, the model bytes and the card bytes (or None)."""
    _check_regular_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, path, "the archive")
            if key is not None:
                _check_signature(archive, members, key, path)
            missing = [name for name in (_METADATA, _MODEL) if name not in members]
            if missing:
                raise ModelFileError(
                    f"{path} is not a pneumoclf model file: the archive lacks "
                    f"{' and '.join(missing)}."
                )
            if members[_METADATA].file_size > _MAX_METADATA_BYTES:
                raise ModelFileError(
                    f"{path} is not a pneumoclf model file: its {_METADATA} is "
                    "implausibly large."
                )
            _check_expansion(members[_MODEL], path)
            metadata_bytes = archive.read(_METADATA)
            model_bytes = archive.read(_MODEL)
            card_bytes = _read_card(archive, members, path)
    except zipfile.BadZipFile as error:
        if "CRC" in str(error):
            raise _corrupt(path, str(error)) from error
        raise ModelFileError(
            f"{path} is not a pneumoclf model file (not a valid zip archive: {error})."
        ) from error
    metadata = _parse_metadata(metadata_bytes, path)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {_METADATA} does not "
            f"declare the format {FORMAT_NAME!r}."
        )
    return metadata, model_bytes, card_bytes


def _read_card(archive, members, path):
    if _MODEL_CARD not in members:
        return None
    if members[_MODEL_CARD].file_size > _MAX_METADATA_BYTES:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its {_MODEL_CARD} is "
            "implausibly large."
        )
    return archive.read(_MODEL_CARD)


def _checked_members(archive, path, where):
    """The members of ``archive`` by name, refusing what no model file holds."""
    infos = archive.infolist()
    repeated = sorted(
        name
        for name, count in collections.Counter(i.filename for i in infos).items()
        if count > 1
    )
    if repeated:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: {where} holds "
            f"{', '.join(repeated)} more than once."
        )
    for info in infos:
        if info.flag_bits & _ENCRYPTED:
            raise ModelFileError(
                f"{path} is not a valid pneumoclf model file: {info.filename} in "
                f"{where} is encrypted."
            )
        if info.compress_type not in _COMPRESSIONS:
            raise ModelFileError(
                f"{path} is not a valid pneumoclf model file: {info.filename} in "
                f"{where} uses compression method {info.compress_type}; model "
                "files are stored or deflated only."
            )
    return {info.filename: info for info in infos}


def _check_signature(archive, members, key, path):
    """Refuse, before reading anything else, a file that the key did not sign."""
    key = _key_bytes(key)
    if _SIGNATURE not in members:
        raise ModelFileError(
            f"{path} is not signed, so it is refused: a key was given, and only "
            "files saved with save_model(..., key=...) under that key are loaded."
        )
    for info in members.values():
        _check_expansion(info, path)
    signature = archive.read(_SIGNATURE)[: 2 * hashlib.sha256().digest_size]
    signed = [(name, _chunks(archive, name)) for name in members if name != _SIGNATURE]
    if not hmac.compare_digest(_sign(signed, key).encode(), signature):
        raise ModelFileError(
            f"{path} has been altered since it was signed, or was signed with "
            "another key: do not use it."
        )


def _chunks(archive, name, size=1024**2):
    with archive.open(name) as member:
        while chunk := member.read(size):
            yield chunk


def _parse_metadata(metadata_bytes, path):
    """Parse the metadata JSON, refusing what would cost far more than its size."""
    n_containers = metadata_bytes.count(b"[") + metadata_bytes.count(b"{")
    try:
        if n_containers > _MAX_METADATA_CONTAINERS:
            raise ValueError(
                f"{n_containers} arrays and objects, far more than any model needs"
            )
        return json.loads(
            metadata_bytes,
            parse_float=_finite_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as error:
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {_METADATA} is not valid "
            f"JSON ({error})."
        ) from error


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _check_expansion(member, path):
    if (
        member.file_size > _MIN_CHECKED_EXPANSION_BYTES
        and member.file_size > _MAX_EXPANSION_RATIO * member.compress_size
    ):
        raise ModelFileError(
            f"{path} is not a pneumoclf model file: its {member.filename} would "
            f"expand from {member.compress_size} to {member.file_size} bytes, "
            "which no trained network does (a decompression bomb?)."
        )


def _corrupt(path, reason):
    return ModelFileError(
        f"{path} is corrupt or has been tampered with ({reason}); do not use it: "
        "save the model again or get an intact copy."
    )


def _check_format(metadata, path):
    """Refuse another major format version; warn about a newer pneumoclf."""
    file_version = str(metadata.get("format_version"))
    if file_version.split(".")[0] not in _READABLE_MAJORS:
        readable = " and ".join(f"{major}.x" for major in _READABLE_MAJORS)
        raise ModelFileError(
            f"{path} is incompatible with this pneumoclf: it is in model file format "
            f"version {file_version}, while pneumoclf {_pneumoclf_version()} reads "
            f"format versions {readable}. Load it with the "
            "pneumoclf version that saved it "
            f"({metadata.get('pneumoclf_version', 'unknown')})."
        )
    saved_with = str(metadata.get("pneumoclf_version"))
    try:
        is_newer = Version(saved_with) > Version(_pneumoclf_version())
    except InvalidVersion as error:
        raise ModelFileError(
            f"{path} is not a valid pneumoclf model file: its pneumoclf version "
            f"{saved_with!r} is not a version number."
        ) from error
    if is_newer:
        warnings.warn(
            f"{path} was saved by pneumoclf {saved_with}, newer than the installed "
            f"{_pneumoclf_version()}; it is loaded, but upgrade pneumoclf if its "
            "predictions matter.",
            UserWarning,
            stacklevel=3,
        )


def _check_checksum(metadata, model_bytes, path):
    if hashlib.sha256(model_bytes).hexdigest() != metadata.get("model_sha256"):
        raise _corrupt(path, f"the SHA-256 checksum of {_MODEL} does not match")


def _check_card_checksum(metadata, card_bytes, path):
    recorded = metadata.get("model_card_sha256")
    if card_bytes is None and recorded is None:
        return
    if card_bytes is None:
        raise _corrupt(path, f"its metadata names a {_MODEL_CARD} the archive lacks")
    if hashlib.sha256(card_bytes).hexdigest() != recorded:
        raise _corrupt(path, f"the SHA-256 checksum of {_MODEL_CARD} does not match")
