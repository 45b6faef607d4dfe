"""The example's shared-tenancy schema (Canvas-flavoured) and the names tests rely on.

A global ``users`` table tied to customers through ``logins`` and ``memberships``, every
foreign key declared; ``catalogue_items`` and ``developer_keys`` are shared by all
customers.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = [
    "CUSTOMERS",
    "DEFAULT_SEED",
    "LEGACY_CUSTOMERS",
    "OWNED_TABLES",
    "SHARED_METADATA",
    "SHARED_TABLES",
    "SHARED_USER_NAME",
    "build_shared_schema",
    "id_column",
]

DEFAULT_SEED = 20261129
CUSTOMERS = ("acme", "globex", "initech")
LEGACY_CUSTOMERS = ("acme", "globex")
SHARED_USER_NAME = "Åsa Öberg-Nyström 🎓"
# Shared by all customers: never counted for one.
SHARED_TABLES = ("catalogue_items", "developer_keys")


# Long texts: MySQL's TEXT stops at 64 KiB, which a real course page easily exceeds.
_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def id_column() -> sa.Column[Any]:
    """The integer primary key ``id`` every example table has."""
    return sa.Column("id", sa.Integer, primary_key=True)


def _org_fk(nullable: bool = False) -> sa.Column[Any]:
    return sa.Column("organisation_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=nullable)


def _user_fk(name: str = "user_id", nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer, sa.ForeignKey("users.id"), nullable=nullable)


def _course_fk(nullable: bool = False) -> sa.Column[Any]:
    return sa.Column("course_id", sa.Integer, sa.ForeignKey("courses.id"), nullable=nullable)


def _account_tables(md: sa.MetaData) -> None:
    sa.Table(
        "organisations",
        md,
        id_column(),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "contracts",
        md,
        id_column(),
        _org_fk(),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("term_months", sa.Integer, nullable=False),
    )
    sa.Table(
        "users",
        md,
        id_column(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "memberships",
        md,
        id_column(),
        _org_fk(),
        _user_fk(),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("joined_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "logins",
        md,
        id_column(),
        _org_fk(),
        _user_fk(),
        sa.Column("unique_id", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("workflow_state", sa.String(32), nullable=False, default="active", server_default="active"),
        sa.Column("last_login_at", sa.DateTime, nullable=True),
    )
    sa.Table(
        "catalogue_items",
        md,
        id_column(),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
    )
    sa.Table(
        "developer_keys",
        md,
        id_column(),
        _org_fk(),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def _course_tables(md: sa.MetaData) -> None:
    sa.Table(
        "courses",
        md,
        id_column(),
        _org_fk(),
        sa.Column("catalogue_item_id", sa.Integer, sa.ForeignKey("catalogue_items.id"), nullable=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("description", _LongText, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "course_sections",
        md,
        id_column(),
        _course_fk(),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("course_sections.id"), nullable=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    sa.Table(
        "course_materials",
        md,
        id_column(),
        _course_fk(),
        sa.Column("section_id", sa.Integer, sa.ForeignKey("course_sections.id"), nullable=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("body", _LongText, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
    )


def _learning_tables(md: sa.MetaData) -> None:
    sa.Table(
        "enrolments",
        md,
        id_column(),
        _course_fk(),
        _user_fk(),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("enrolled_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "completions",
        md,
        id_column(),
        _course_fk(),
        _user_fk(),
        sa.Column("completed_at", sa.DateTime, nullable=False),
        sa.Column("score", sa.Numeric(5, 2), nullable=True),
    )
    sa.Table(
        "quizzes",
        md,
        id_column(),
        _course_fk(),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("max_score", sa.Numeric(6, 2), nullable=False),
    )
    sa.Table(
        "quiz_attempts",
        md,
        id_column(),
        sa.Column("quiz_id", sa.Integer, sa.ForeignKey("quizzes.id"), nullable=False),
        _user_fk(),
        sa.Column("score", sa.Numeric(6, 2), nullable=False),
        sa.Column("max_score", sa.Numeric(6, 2), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    sa.Table(
        "surveys",
        md,
        id_column(),
        _course_fk(),
        sa.Column("title", sa.String(255), nullable=False),
    )


def _result_tables(md: sa.MetaData) -> None:
    sa.Table(
        "survey_questions",
        md,
        id_column(),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("surveys.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
    )
    sa.Table(
        "survey_answers",
        md,
        id_column(),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("surveys.id"), nullable=False),
        sa.Column("question_id", sa.Integer, sa.ForeignKey("survey_questions.id"), nullable=False),
        _user_fk(),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", _LongText, nullable=True),
        sa.Column("answered_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "feedback",
        md,
        id_column(),
        _course_fk(),
        _user_fk(),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", _LongText, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "certificates",
        md,
        id_column(),
        _course_fk(),
        _user_fk(),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime, nullable=False),
    )


def _business_tables(md: sa.MetaData) -> None:
    sa.Table(
        "reports",
        md,
        id_column(),
        _org_fk(),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("generated_at", sa.DateTime, nullable=False),
        sa.Column("content", _LongText, nullable=False),
    )
    sa.Table(
        "activity_log",
        md,
        id_column(),
        _org_fk(),
        _user_fk(nullable=True),
        _course_fk(nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "attachments",
        md,
        id_column(),
        _course_fk(),
        _user_fk("uploaded_by", nullable=True),
        sa.Column("storage_path", sa.String(512), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
    )
    sa.Table(
        "invoices",
        md,
        id_column(),
        _org_fk(),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("issued_on", sa.Date, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("paid", sa.Boolean, nullable=False),
        _user_fk("billing_contact_id", nullable=True),
    )
    sa.Table(
        "page_views",
        md,
        id_column(),
        _org_fk(),
        _user_fk(nullable=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("viewed_at", sa.DateTime, nullable=False),
    )


def _define_shared_schema(md: sa.MetaData) -> sa.MetaData:
    _account_tables(md)
    _course_tables(md)
    _learning_tables(md)
    _result_tables(md)
    _business_tables(md)
    return md


SHARED_METADATA = _define_shared_schema(sa.MetaData())
OWNED_TABLES = tuple(t.name for t in SHARED_METADATA.sorted_tables if t.name not in SHARED_TABLES)


def build_shared_schema(engine: sa.Engine) -> None:
    """Create the shared-tenancy schema (all tables, foreign keys declared) on ``engine``."""
    SHARED_METADATA.create_all(engine)
