"""The editor's speech preview (POST /manage/api/speech) speaks the text it is given, and only that:
text that looks like an espeak-ng option is words to say, never an option (no file read, no file
written), through the real app and the real espeak-ng."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import ACME, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

ESPEAK = shutil.which("espeak-ng")
if ESPEAK is None and os.environ.get("CI"):
    pytest.fail("CI must run the speech preview tests: install espeak-ng (see .ci/run)", pytrace=False)
pytestmark = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (apt-get install it)")

# 200 different words: spoken, they last over a minute, far longer than any option-like text.
SECRET_WORDS = " ".join(f"zebracorn{n}" for n in range(200))


def spoken(text: str) -> bytes:
    """What espeak-ng says for this literal text (read from standard input: never an option)."""
    assert ESPEAK is not None
    done = subprocess.run(
        [ESPEAK, "-v", "en-us", "--stdout", "--stdin"], input=text.encode(), capture_output=True, check=True
    )
    return done.stdout


@pytest.fixture
async def editor(service: Service) -> tuple[httpx.AsyncClient, dict[str, str]]:
    """A signed-in manager's client and the CSRF header the editor sends."""
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    page = await service.client.get("/manage/script", params={"business": ACME, "locale": "en-US"})
    return service.client, {"X-CSRF-Token": csrf_of(page)}


async def speak(editor: tuple[httpx.AsyncClient, dict[str, str]], text: str) -> httpx.Response:
    client, headers = editor
    return await client.post("/manage/api/speech", json={"text": text, "locale": "en-US"}, headers=headers)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A directory of the test's own (the database lives beside it)."""
    path = tmp_path / "files"
    path.mkdir()
    return path


@pytest.fixture
def secret_file(files: Path) -> Path:
    path = files / "secret.txt"
    path.write_text(SECRET_WORDS + "\n")
    return path


def option_like_texts(files: Path, secret_file: Path) -> list[str]:
    return [
        "-f/etc/hostname",
        f"-f{secret_file}",
        f"-f {secret_file}",
        "--version",
        "--help",
        f"-w{files / 'written.wav'}",
        f"-w {files / 'spaced.wav'}",
        "--path=/",
        "-v nonexistent",
        "-vnonexistent",
        "-m <speak>hi</speak>",
        "--",
    ]


async def test_option_like_text_is_spoken_literally_never_read_as_an_option(
    editor: tuple[httpx.AsyncClient, dict[str, str]], files: Path, secret_file: Path
) -> None:
    file_speech = spoken(SECRET_WORDS)
    for text in option_like_texts(files, secret_file):
        response = await speak(editor, text)
        assert response.status_code == 200, (text, response.text[:200])
        assert response.headers["content-type"] == "audio/wav"
        assert response.content[:4] == b"RIFF", (text, response.content[:80])
        # The speech of the literal characters, byte for byte (espeak-ng is deterministic) ...
        assert response.content == spoken(text), text
        # ... and nowhere near as long as the file's 200 words would be.
        assert len(response.content) < len(file_speech) / 5, text
    assert list(files.iterdir()) == [secret_file], "no option may write a file"


async def test_text_over_5000_characters_is_refused_with_a_clear_error(
    editor: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    response = await speak(editor, "word " * 1001)
    assert response.status_code == 413
    assert response.json()["error"].endswith("5,000 at most")


async def test_a_normal_prompt_is_spoken(editor: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    text = "Hello, thank you for calling Acme Parcels. Press 1 to agree."
    response = await speak(editor, text)
    assert response.status_code == 200 and response.content == spoken(text)


async def test_a_body_that_is_not_json_gets_400_not_a_claim_that_espeak_is_missing(
    editor: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, headers = editor
    response = await client.post(
        "/manage/api/speech", content=b"not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "espeak" not in response.json()["error"]
