"""Encrypted handover: ``export --encrypt-to`` leaves one .age file and nothing in clear.

Keys come from Debian's ``age-keygen`` and from pyrage; the package is decrypted with
Debian's ``age`` tool (a different implementation from the one that encrypted it) and the
bag inside is verified with ``learnexit verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import needs_tool

from learnexit.demo import build_example

pyrage = pytest.importorskip("pyrage")
AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")


def needs_age() -> None:
    needs_tool("age", "age-keygen", package="age", why="Debian's age decrypts and makes keys")


def run(args: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "LEARNEXIT_ACTOR": "tester@example", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "learnexit", *args], env=full, capture_output=True, text=True, timeout=300, **kw
    )


def everything(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("age")
    build_example(root / "ex", activity_rows=100)
    return root


@pytest.fixture(scope="module")
def keys(world: Path) -> dict[str, str]:
    """Two recipients: one from age-keygen (a key file), one from pyrage (a recipients file).
    Without Debian's age the first is pyrage's too, in age-keygen's file format (only the
    test that decrypts with age needs the real tool)."""
    key_file = world / "customer-key.txt"
    if AGE_KEYGEN is not None:
        subprocess.run([AGE_KEYGEN, "-o", str(key_file)], check=True, capture_output=True)
    else:
        first = pyrage.x25519.Identity.generate()
        key_file.write_text(f"# public key: {first.to_public()}\n{first}\n", encoding="utf-8")
    public = next(
        line.split(": ", 1)[1] for line in key_file.read_text().splitlines() if line.startswith("# public key:")
    )
    second = pyrage.x25519.Identity.generate()
    recipients = world / "recipients.txt"
    recipients.write_text(f"# the customer's second officer\n{second.to_public()}\n", encoding="utf-8")
    return {"key_file": str(key_file), "public": public, "second": str(second), "recipients": str(recipients)}


def test_only_the_age_file_remains_and_age_decrypts_it(world: Path, keys: dict[str, str], tmp_path: Path) -> None:
    needs_age()
    out = tmp_path / "handover"
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    done = run(
        [
            "export",
            "acme",
            "--zip",
            "--encrypt-to",
            keys["public"],
            "--encrypt-to",
            keys["recipients"],
            "--out",
            str(out),
            "--config",
            str(world / "ex" / "learnexit.toml"),
            "--json",
        ],
        env={"TMPDIR": str(private_tmp), "LEARNEXIT_NOW": "2026-11-29T11:15:00"},
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["encrypted"] is True and data["zip"] is True
    sealed = Path(data["path"])
    # nothing but the .age file, in the output folder and in the temporary folder
    assert [p.name for p in out.iterdir()] == [sealed.name] and sealed.name.endswith(".zip.age")
    assert list(private_tmp.rglob("*")) == []
    assert (sealed.stat().st_mode & 0o777) == 0o600
    body = sealed.read_bytes()
    assert body.startswith(b"age-encryption.org/v1\n")
    assert data["bytes"] == len(body)

    # Debian's age opens it with the age-keygen identity
    clear_zip = tmp_path / "opened.zip"
    opened = subprocess.run(
        [AGE or "age", "-d", "-i", keys["key_file"], "-o", str(clear_zip), str(sealed)], capture_output=True
    )
    assert opened.returncode == 0, opened.stderr
    verified = run(["verify", str(clear_zip), "--json"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["valid"] is True

    # Nothing of the clear zip shows through: not its first header, not the name of any of
    # its members, not the customer's name.  Every marker is 5 bytes or longer: a 4-byte one
    # (b"PK\x03\x04", b"Acme") turns up by chance in these 4 MB of ciphertext about once in
    # a thousand runs.
    clear = clear_zip.read_bytes()
    with zipfile.ZipFile(clear_zip) as zf:
        names = [name.encode() for name in zf.namelist()]
    assert len(names) > 50 and any(name.endswith(b"/bagit.txt") for name in names)
    markers = [clear[:30], *names, b"bagit", "Acme Lärande AB".encode(), b"organisations", b"Learnexit-Rows"]
    assert [m for m in markers if m in body] == []

    # and so does the second recipient, with pyrage: the same zip
    second = pyrage.x25519.Identity.from_str(keys["second"])
    assert pyrage.decrypt(body, [second]) == clear_zip.read_bytes()
    # a stranger cannot
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(body, [pyrage.x25519.Identity.generate()])
    # `verify` on the sealed file says to decrypt first
    sealed_verify = run(["verify", str(sealed)])
    assert sealed_verify.returncode == 2 and "decrypt it first" in sealed_verify.stderr

    # the ledger knows it was encrypted, under its final name
    with sqlite3.connect(world / "ex" / "learnexit-state.db") as conn:
        status, path = conn.execute("SELECT status, path FROM exports ORDER BY id DESC LIMIT 1").fetchone()
        details = conn.execute("SELECT details FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert status == "complete" and path == str(sealed)
    assert json.loads(details)["encrypted"] is True


def test_encrypt_to_implies_zip(world: Path, keys: dict[str, str], tmp_path: Path) -> None:
    done = run(
        ["export", "acme", "-f", "csv", "--encrypt-to", keys["public"], "--out", str(tmp_path), "--json"]
        + ["--config", str(world / "ex" / "learnexit.toml")],
        env={"LEARNEXIT_NOW": "2026-11-29T11:16:00"},
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["acme-2026-11-29T101600Z.zip.age"]


BAD_RECIPIENTS = {
    "not a key": ["age1notakey"],
    "empty": [""],
    "secret key instead of public": ["AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"],
    "ssh garbage": ["ssh-ed25519 AAAAnotbase64"],
    "missing file": ["{tmp}/no-such-recipients.txt"],
    "file without recipients": ["{tmp}/comments-only.txt"],
    "one good one bad": ["{good}", "age1qqqq"],
}


@pytest.mark.parametrize("case", list(BAD_RECIPIENTS))
def test_a_bad_recipient_writes_nothing(world: Path, keys: dict[str, str], tmp_path: Path, case: str) -> None:
    (tmp_path / "comments-only.txt").write_text("# nobody here yet\n\n", encoding="utf-8")
    args = []
    for value in BAD_RECIPIENTS[case]:
        args += ["--encrypt-to", value.replace("{tmp}", str(tmp_path)).replace("{good}", keys["public"])]
    out = tmp_path / "handover"
    before = everything(world / "ex")
    done = run(
        ["export", "acme", "--zip", *args, "--out", str(out), "--config", str(world / "ex" / "learnexit.toml")]
        + ["--json"],
        env={"LEARNEXIT_NOW": "2026-11-29T11:17:00"},
    )
    assert done.returncode == 2, (case, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("learnexit: error: --encrypt-to"), done.stderr
    assert not out.exists()
    assert everything(world / "ex") == before  # ledger, source and default export folder untouched
