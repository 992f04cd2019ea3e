"""The vault: secrets encrypted at rest in the state directory.

Files, all mode 0600 and written atomically (temp file, fsync, rename, directory fsync)::

    vault.json       {"format": "farmbot-vault", "version": 1, "key_id": ID,
                      "secrets": {NAME: {"created", "updated", "nonce", "ciphertext"}}}
    vault.key        the key: 32 random bytes, URL-safe base64 -- unless the key comes
                     from $FARMBOT_VAULT_KEY or the systemd credential farmbot-vault-key
    vault.key.next   the next key, only while a rotation is under way
    vault.lock       flock'ed by every operation, so a reader never sees half a rotation

Each secret is sealed with AES-256-GCM under a fresh nonce; the associated data binds it
to its name and to the key id, so an edited file, or a ciphertext moved to another name,
fails to decrypt. The key id (a hash of the key) is stored in the clear: a wrong key is
recognized as such before anything is decrypted.

Key rotation (a file-managed key) goes through states that are each recoverable::

    1. vault.key.next written        vault.json still under the old key
    2. vault.json rewritten          every secret under the new key, in one rename
    3. vault.key.next -> vault.key   done

A crash leaves either state 1 (rolled back on the next open: the unused next key is
deleted) or state 2 (rolled forward: the next key becomes the key), or a stray temp file
(deleted). Every open runs that recovery under the lock, so at every moment the key on
disk that matches ``key_id`` decrypts every secret.

This module imports nothing of farmbot's but its errors: it is storage, not config.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from farmbot.errors import VaultError

__all__ = [
    "CREDENTIAL",
    "KEY_ENV",
    "KeySource",
    "Rotation",
    "SecretInfo",
    "Vault",
    "key_id",
]

VAULT_FILE = "vault.json"
KEY_FILE = "vault.key"
NEXT_KEY_FILE = "vault.key.next"
LOCK_FILE = "vault.lock"
KEY_ENV = "FARMBOT_VAULT_KEY"
CREDENTIAL = "farmbot-vault-key"  # LoadCredential[Encrypted]=farmbot-vault-key:...
FORMAT = "farmbot-vault"
VERSION = 1
MAX_VALUE_BYTES = 64 * 1024
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_TMP = ".tmp"

Checkpoint = Callable[[str], None]


def _no_checkpoint(step: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where the key comes from. ``path`` is set when farmbot manages the key file."""

    where: str  # for messages: "$FARMBOT_VAULT_KEY", "/state/vault.key", ...
    key: bytes | None = None  # None: the key file does not exist (yet)
    path: Path | None = None

    @property
    def id(self) -> str | None:
        return key_id(self.key) if self.key is not None else None


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What ``farmbot secret list`` shows: never the value."""

    name: str
    created: str  # ISO 8601, UTC
    updated: str


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a key rotation did."""

    old_id: str
    new_id: str
    secrets: int
    key_file: Path  # where the new key is now


@dataclass(slots=True)
class _Record:
    created: str
    updated: str
    nonce: bytes
    ciphertext: bytes


@dataclass(slots=True)
class _State:
    key_id: str | None  # None: no vault.json yet
    secrets: dict[str, _Record]


def key_id(key: bytes) -> str:
    """A short public name for a key (a hash of it; it reveals nothing of the key)."""
    return hashlib.sha256(b"farmbot vault key id\0" + key).hexdigest()[:16]


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def parse_key(text: str, where: str) -> bytes:
    """A key as written in a key file or variable; a clear error naming ``where`` if not."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise VaultError(
            f"the vault key in {where} is not a farmbot vault key "
            "(32 bytes in URL-safe base64, as `farmbot secret set` writes to vault.key)"
        )
    return key


class Vault:
    """The secrets of one state directory. Every method locks, recovers, then acts."""

    def __init__(
        self,
        state_dir: Path,
        environ: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> None:
        self.state_dir = state_dir
        self._environ = environ
        self._clock = clock
        self._checkpoint = checkpoint  # called at each step of a rotation (tests pause there)

    def __repr__(self) -> str:
        return f"Vault({str(self.path)!r})"

    @property
    def path(self) -> Path:
        return self.state_dir / VAULT_FILE

    # -- reading -------------------------------------------------------------------------

    def key_source(self) -> KeySource:
        """Where the key comes from: $FARMBOT_VAULT_KEY, a systemd credential, vault.key."""
        if KEY_ENV in self._environ:
            where = f"${KEY_ENV}"
            return KeySource(where, parse_key(self._environ[KEY_ENV], where))
        credentials = self._environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / CREDENTIAL).is_file():
            where = f"systemd credential {CREDENTIAL}"
            return KeySource(where, parse_key(_read_text(Path(credentials) / CREDENTIAL), where))
        path = self.state_dir / KEY_FILE
        try:
            text = _read_text(path)
        except FileNotFoundError:
            return KeySource(str(path), None, path)
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return KeySource(str(path), parse_key(text, str(path)), path)

    def listing(self) -> tuple[KeySource, list[SecretInfo]]:
        """The key's source and the secrets' names and dates, sorted by name."""
        with self._locked(create=False):
            source = self._recover()
            state = self._load()
        infos = [SecretInfo(n, r.created, r.updated) for n, r in sorted(state.secrets.items())]
        return source, infos

    def get(self, name: str) -> str:
        """The value of secret ``name``."""
        with self._locked(create=False):
            source = self._recover()
            state = self._load()
        record = state.secrets.get(name)
        if record is None:
            raise VaultError(self._unknown(name, state))
        return self._open(source, state, name, record)

    # -- writing -------------------------------------------------------------------------

    def set(self, name: str, value: str) -> bool:
        """Store ``value`` as secret ``name``; True when the name is new."""
        if not NAME.fullmatch(name):
            raise VaultError(
                f"invalid secret name {name!r}: use 1-64 of A-Z, a-z, 0-9, '_', '.' and '-'"
            )
        data = value.encode()
        if not data:
            raise VaultError(f"secret '{name}': the value is empty")
        if len(data) > MAX_VALUE_BYTES:
            raise VaultError(f"secret '{name}': the value is over {MAX_VALUE_BYTES} bytes")
        with self._locked(create=True):
            source = self._recover()
            state = self._load()
            if source.key is None and state.key_id is None and source.path is not None:
                source = self._create_key(source.path)
            key = self._key_for(source, state, name)
            now = _iso(self._clock())
            old = state.secrets.get(name)
            state.secrets[name] = _seal(key, name, data, old.created if old else now, now)
            state.key_id = key_id(key)
            self._write_state(state)
        return old is None

    def remove(self, name: str) -> None:
        """Forget secret ``name``."""
        with self._locked(create=False):
            self._recover()
            state = self._load()
            if name not in state.secrets:
                raise VaultError(self._unknown(name, state))
            del state.secrets[name]
            self._write_state(state)

    def rotate_key(self, new_key_file: Path | None = None) -> Rotation:
        """Re-encrypt every secret under a new key, crash-safely (see the module doc).

        A file-managed key is replaced in place. A key from the environment or a systemd
        credential cannot be: the new key is written to ``new_key_file`` (which must not
        exist) before any secret is touched, for the operator to install.
        """
        with self._locked(create=False):
            source = self._recover()
            state = self._load()
            if state.key_id is None and source.key is None:
                raise VaultError(
                    f"there is no vault in {self.state_dir} yet (`farmbot secret set NAME`)"
                )
            if source.path is not None and new_key_file is not None:
                raise VaultError(
                    f"the key is {source.path}, which farmbot replaces itself; "
                    "--new-key-file is for a key from $FARMBOT_VAULT_KEY or a systemd credential"
                )
            old = self._key_for(source, state, None)
            # Everything must decrypt under the old key before anything changes.
            values = {n: self._open(source, state, n, r) for n, r in state.secrets.items()}
            new = AESGCM.generate_key(bit_length=256)
            if source.path is not None:
                target = self.state_dir / NEXT_KEY_FILE
            elif new_key_file is None:
                raise VaultError(
                    f"the vault key comes from {source.where}, which farmbot cannot change: "
                    "give --new-key-file PATH for the new key, then install it there"
                )
            else:
                target = new_key_file
                if target.exists():
                    raise VaultError(f"{target} already exists; choose a new file for the key")
            self._write(target, (encode_key(new) + "\n").encode(), "next-key")
            state.secrets = {
                n: _seal(new, n, values[n].encode(), r.created, r.updated)
                for n, r in state.secrets.items()
            }
            state.key_id = key_id(new)
            self._write_state(state)
            key_file = target
            if source.path is not None:
                os.replace(target, source.path)
                _fsync_dir(self.state_dir)
                key_file = source.path
                self._checkpoint("key")
        return Rotation(key_id(old), key_id(new), len(values), key_file)

    # -- internals -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, create: bool) -> Iterator[None]:
        if create:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not self.state_dir.is_dir():
            yield  # no state directory: nothing to lock, nothing to read
            return
        try:
            fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise VaultError(f"cannot open the vault in {self.state_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _recover(self) -> KeySource:
        """Finish or undo an interrupted rotation; return the key source afterwards."""
        for name in (VAULT_FILE, KEY_FILE, NEXT_KEY_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / (name + _TMP)).unlink()
        source = self.key_source()
        next_path = self.state_dir / NEXT_KEY_FILE
        if source.path is None or not next_path.exists():
            return source
        next_id = key_id(parse_key(_read_text(next_path), str(next_path)))
        stored = self._load().key_id
        if stored == next_id:  # state 2: the secrets are under the next key
            os.replace(next_path, source.path)
        elif stored is None or stored == source.id:  # state 1: the next key was never used
            next_path.unlink()
        else:
            return source  # neither key fits: _key_for says so
        _fsync_dir(self.state_dir)
        return self.key_source()

    def _load(self) -> _State:
        try:
            raw = json.loads(_read_text(self.path))
        except FileNotFoundError:
            return _State(None, {})
        except (ValueError, UnicodeDecodeError):
            raise VaultError(f"{self.path} is damaged (not valid JSON)") from None
        try:
            if raw["format"] != FORMAT or raw["version"] != VERSION:
                raise VaultError(f"{self.path} is not a vault this farmbot can read")
            secrets = {
                str(name): _Record(
                    created=str(r["created"]),
                    updated=str(r["updated"]),
                    nonce=base64.b64decode(r["nonce"], validate=True),
                    ciphertext=base64.b64decode(r["ciphertext"], validate=True),
                )
                for name, r in raw["secrets"].items()
            }
            return _State(str(raw["key_id"]), secrets)
        except (KeyError, TypeError, AttributeError, binascii.Error):
            raise VaultError(f"{self.path} is damaged (unexpected content)") from None

    def _write_state(self, state: _State) -> None:
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "key_id": state.key_id,
            "secrets": {
                name: {
                    "created": r.created,
                    "updated": r.updated,
                    "nonce": base64.b64encode(r.nonce).decode(),
                    "ciphertext": base64.b64encode(r.ciphertext).decode(),
                }
                for name, r in sorted(state.secrets.items())
            },
        }
        self._write(self.path, (json.dumps(doc, indent=1) + "\n").encode(), "vault")

    def _write(self, path: Path, data: bytes, step: str) -> None:
        """Atomically: temp file (0600), fsync, rename, directory fsync."""
        tmp = path.with_name(path.name + _TMP)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            self._checkpoint(f"{step}-tmp")
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise VaultError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._checkpoint(step)

    def _create_key(self, path: Path) -> KeySource:
        key = AESGCM.generate_key(bit_length=256)
        self._write(path, (encode_key(key) + "\n").encode(), "key-created")
        return KeySource(str(path), key, path)

    def _key_for(self, source: KeySource, state: _State, name: str | None) -> bytes:
        """The key, checked against the one the vault was written with."""
        what = f"cannot read secret '{name}': " if name else ""
        if source.key is None:
            raise VaultError(
                f"{what}no vault key: {source.where} does not exist "
                f"(nor ${KEY_ENV}, nor a systemd credential {CREDENTIAL})"
            )
        if state.key_id is not None and state.key_id != source.id:
            raise VaultError(
                f"{what}wrong vault key: the key from {source.where} (id {source.id}) is not "
                f"the key {self.path.name} was written with (id {state.key_id})"
            )
        return source.key

    def _open(self, source: KeySource, state: _State, name: str, record: _Record) -> str:
        key = self._key_for(source, state, name)
        try:
            data = AESGCM(key).decrypt(record.nonce, record.ciphertext, _aad(name, key))
            return data.decode()
        except (InvalidTag, ValueError):  # ValueError: a bad nonce length, not UTF-8
            raise VaultError(
                f"secret '{name}' cannot be decrypted: {self.path} was altered or damaged"
            ) from None

    def _unknown(self, name: str, state: _State) -> str:
        names = sorted(state.secrets)
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        if close:
            hint = f"; did you mean '{close[0]}'?"
        elif names:
            hint = f" (it has: {', '.join(names)})"
        else:
            hint = f" (it is empty; add one with `farmbot secret set {name}`)"
        return f"no secret '{name}' in the vault {self.path}{hint}"


def _seal(key: bytes, name: str, data: bytes, created: str, updated: str) -> _Record:
    nonce = os.urandom(12)
    return _Record(created, updated, nonce, AESGCM(key).encrypt(nonce, data, _aad(name, key)))


def _aad(name: str, key: bytes) -> bytes:
    return f"{FORMAT} v{VERSION}\0{key_id(key)}\0{name}".encode()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise VaultError(f"cannot read {path}: {why}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
