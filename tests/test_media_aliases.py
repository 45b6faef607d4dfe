"""A purge deletes a media file only when no row that stays names it, under any spelling.

The attack (issue 17): an acme attachment whose path names globex's file another way —
``acme/../globex/f``, ``./globex/f``, ``globex//f``, through a symlinked folder, a
symlink, or a hard link — made acme's purge delete globex's file while globex's row still
named it.  Here every spelling leaves globex's file and row alone; a row naming a folder
(or a FIFO) refuses the purge in its plan, before any row goes; on S3 the keys are
compared normalised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_purge import Lms, as_json, files, give_notice, make_lms, purge, snapshot


@pytest.fixture
def lms(tmp_path: Path, example_template: Path) -> Lms:
    return make_lms("sqlite", tmp_path / "ex", example_template)


def attachments_of(lms: Lms, slug: str) -> list[tuple[int, str]]:
    with sa.create_engine(lms.url).connect() as conn:
        return [
            (int(r[0]), str(r[1]))
            for r in conn.exec_driver_sql(
                "SELECT a.id, a.storage_path FROM attachments a JOIN courses c ON c.id = a.course_id "
                "JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = ? ORDER BY a.id",
                (slug,),
            )
        ]


def set_path(lms: Lms, attachment_id: int, path: str) -> None:
    with sa.create_engine(lms.url).begin() as conn:
        conn.exec_driver_sql("UPDATE attachments SET storage_path = ? WHERE id = ?", (path, attachment_id))


def alias(lms: Lms, how: str, target: str) -> str:
    """A path naming globex's file ``target`` another way (making links where needed)."""
    head, _, name = target.rpartition("/")
    if how == "dot-dot":
        return f"acme/../{target}"
    if how == "dot-slash":
        return f"./{target}"
    if how == "double-slash":
        return target.replace("/", "//", 1)
    if how == "symlinked-folder":
        (lms.media / "acme" / "shared").symlink_to(os.path.relpath(lms.media / head, lms.media / "acme"))
        return f"acme/shared/{name}"
    if how == "symlink":
        (lms.media / "acme" / "alias.pdf").symlink_to(os.path.relpath(lms.media / target, lms.media / "acme"))
        return "acme/alias.pdf"
    if how == "hard-link":
        os.link(lms.media / target, lms.media / "acme" / "copy.pdf")
        return "acme/copy.pdf"
    raise AssertionError(how)


SPELLINGS = ["dot-dot", "dot-slash", "double-slash", "symlinked-folder", "symlink", "hard-link"]


@pytest.mark.parametrize("how", SPELLINGS)
def test_purge_never_deletes_a_file_another_customer_names_through_an_alias(lms: Lms, how: str) -> None:
    give_notice(lms)
    (victim_id, target), *_ = attachments_of(lms, "globex")
    acme = attachments_of(lms, "acme")
    spelled = alias(lms, how, target)
    set_path(lms, acme[0][0], spelled)
    before = files(lms.media)
    globex_rows = {k: v for k, v in snapshot(lms.url)["attachments"].items() if k[0] not in {a for a, _ in acme}}

    plan = purge(lms, "acme", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.stderr
    planned = as_json(plan)["customers"][0]["media"]
    if how == "dot-dot":  # refused by the rules: the row goes, no file is deleted for it
        assert planned["delete"] == 5 and planned["kept_shared"] == 0
        assert any(
            f"attachments rows {acme[0][0]}: storage_path is refused" in n
            for n in as_json(plan)["customers"][0]["notes"]
        )
    else:
        assert planned["delete"] == 5 and planned["kept_shared"] == 1

    result = purge(lms, "acme", "--yes", "--json")
    data = as_json(result)["customers"][0]
    after = files(lms.media)
    # globex's file is there, byte for byte, and its row still names it
    assert after[target] == before[target]
    assert {k: v for k, v in snapshot(lms.url)["attachments"].items()} == globex_rows
    assert victim_id in {k[0] for k in globex_rows}
    # acme's other files are gone
    assert not any(p in after for _, p in acme[1:])
    if how == "dot-dot":
        assert result.exit_code == 1 and data["status"] == "failed"
        assert data["media"]["unsafe"] == 1 and data["media"]["deleted"] == 5
    else:
        assert result.exit_code == 0, result.stderr
        assert data["status"] == "done" and data["media"]["kept_shared"] == 1 and data["media"]["deleted"] == 5
    assert spelled not in result.stdout + result.stderr


@pytest.mark.parametrize("how", ["dot-slash", "double-slash", "dot-dot"])
def test_purge_keeps_a_file_a_staying_row_names_by_another_spelling(lms: Lms, how: str) -> None:
    """The other way round: globex's row names acme's file oddly (even by a spelling the
    rules refuse): the file stays, as globex may still use it."""
    give_notice(lms)
    (_aid, target), *_ = attachments_of(lms, "acme")
    (gid, _gpath), *_ = attachments_of(lms, "globex")
    spelled = {"dot-slash": f"./{target}", "double-slash": target.replace("/", "//", 1)}.get(how, f"globex/../{target}")
    set_path(lms, gid, spelled)
    before = files(lms.media)
    result = purge(lms, "acme", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    data = as_json(result)["customers"][0]
    assert data["media"]["kept_shared"] == 1 and data["media"]["deleted"] == 5
    assert files(lms.media)[target] == before[target]


def test_hard_links_of_acme_s_own_files_all_go(lms: Lms) -> None:
    """Two acme rows naming one file under two hard-linked names: both names go."""
    give_notice(lms)
    acme = attachments_of(lms, "acme")
    os.link(lms.media / acme[0][1], lms.media / "acme" / "second-name.pdf")
    set_path(lms, acme[1][0], "acme/second-name.pdf")
    result = purge(lms, "acme", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    left = set(files(lms.media))
    assert acme[0][1] not in left and "acme/second-name.pdf" not in left
    assert left & {p for _, p in acme} == {acme[1][1]}  # named by no row any more: not acme's file to delete


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_media_row_naming_a_folder_is_refused_in_the_plan(lms: Lms, kind: str) -> None:
    give_notice(lms)
    acme = attachments_of(lms, "acme")
    if kind == "folder":
        set_path(lms, acme[2][0], "acme")
    else:
        os.mkfifo(lms.media / "acme" / "pipe")
        set_path(lms, acme[2][0], "acme/pipe")
    before_db, before_files = snapshot(lms.url), files(lms.media)
    result = purge(lms, "acme", "--yes")
    assert result.exit_code == 3
    assert f"attachments rows {acme[2][0]}: storage_path names a folder or another file" in result.stderr
    assert snapshot(lms.url) == before_db and files(lms.media) == before_files  # nothing deleted
    with lms.ledger() as ledger:
        from learnexit.ledger import schema as L

        assert ledger.rows(L.purges) == []


# --------------------------------------------------------------------------- S3


def keys(client: Any) -> set[str]:
    return {o["Key"] for o in client.list_objects_v2(Bucket="lms-media").get("Contents", [])}


@pytest.mark.parametrize("how", ["dot-slash", "double-slash", "dot-dot"])
def test_purge_on_s3_never_deletes_an_object_another_customer_names_by_another_key(lms: Lms, s3: str, how: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3, region_name="eu-north-1")
    client.create_bucket(Bucket="lms-media", CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    for path in sorted(files(lms.media)):
        client.upload_file(str(lms.media / path), "lms-media", f"prod/files/{path}")
    lms.config.write_text(
        lms.config.read_text("utf-8").replace('root = "media"', 'root = "s3://lms-media/prod/files"'), "utf-8"
    )
    give_notice(lms)
    (_gid, target), *_ = attachments_of(lms, "globex")
    acme = attachments_of(lms, "acme")
    spelled = {"dot-slash": f"./{target}", "double-slash": target.replace("/", "//", 1)}.get(how, f"acme/../{target}")
    set_path(lms, acme[0][0], spelled)
    result = purge(lms, "acme", "--yes", "--json")
    data = as_json(result)["customers"][0]
    left = keys(client)
    assert f"prod/files/{target}" in left
    assert not any(f"prod/files/{p}" in left for _, p in acme[1:])
    if how == "dot-dot":
        assert result.exit_code == 1 and data["media"]["unsafe"] == 1
    else:
        assert result.exit_code == 0, result.stderr
        assert data["media"]["kept_shared"] == 1 and data["media"]["deleted"] == 5
