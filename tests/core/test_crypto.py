"""Secrets at rest: the key box, key rotation, and where the key comes from."""

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.core.config import Settings
from services.core.crypto import (
    MissingSecretKey,
    SecretBox,
    UndecryptableSecret,
    key_file,
    load_box,
    new_key,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def settings_with(data_dir: Path, secret_key: str | None = None) -> Settings:
    return Settings(
        data_dir=data_dir,
        secret_key=None if secret_key is None else SecretStr(secret_key),
        _env_file=None,
    )


def test_a_secret_round_trips_and_is_not_kept_in_the_clear() -> None:
    box = SecretBox([new_key()])
    token = box.encrypt(SECRET)
    assert SECRET not in token
    assert "whsec_" not in token
    assert box.decrypt(token) == SECRET
    assert box.encrypt(SECRET) != token, "a fresh IV each time"


def test_another_key_cannot_decrypt() -> None:
    token = SecretBox([new_key()]).encrypt(SECRET)
    with pytest.raises(UndecryptableSecret, match="RETENTION_SECRET_KEY"):
        SecretBox([new_key()]).decrypt(token)
    with pytest.raises(UndecryptableSecret):
        SecretBox([new_key()]).decrypt("not a token")


def test_rotation_new_key_first_old_keys_still_decrypt() -> None:
    old, new = new_key(), new_key()
    under_old = SecretBox([old]).encrypt(SECRET)
    both = SecretBox([new, old])
    assert both.decrypt(under_old) == SECRET
    moved = both.reencrypt(under_old)
    assert SecretBox([new]).decrypt(moved) == SECRET
    with pytest.raises(UndecryptableSecret):
        SecretBox([old]).decrypt(moved)
    with pytest.raises(UndecryptableSecret):
        SecretBox([new]).reencrypt(under_old)


def test_a_bad_key_is_named_by_its_position() -> None:
    with pytest.raises(ValueError, match="key 2 of RETENTION_SECRET_KEY is not a Fernet key"):
        SecretBox([new_key(), "too-short"])
    with pytest.raises(ValueError, match="holds no key"):
        SecretBox([])


def test_the_setting_wins_and_lists_keys_newest_first(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    box = load_box(settings_with(tmp_path, f" {new} , {old},"))
    token = box.encrypt(SECRET)
    assert SecretBox([new]).decrypt(token) == SECRET
    with pytest.raises(UndecryptableSecret):
        SecretBox([old]).decrypt(token)
    assert not key_file(settings_with(tmp_path)).exists(), "no key file when the setting is set"


def test_without_the_setting_or_a_key_file_nothing_starts(tmp_path: Path) -> None:
    with pytest.raises(MissingSecretKey, match="RETENTION_SECRET_KEY is not set"):
        load_box(settings_with(tmp_path / "data"))
    assert not (tmp_path / "data").exists()


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    settings = settings_with(tmp_path / "data")
    made = load_box(settings, create=True)
    path = key_file(settings)
    assert path == tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = made.encrypt(SECRET)
    content = path.read_text()
    again = load_box(settings, create=True)
    assert path.read_text() == content
    assert load_box(settings).decrypt(token) == again.decrypt(token) == SECRET
