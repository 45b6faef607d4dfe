"""The commented starting configuration ``learnexit init`` writes.

It names every section and every key the loader accepts (``config.SECTION_KEYS`` and
``config.ROLE_COLUMNS``; a test keeps them in step), with the defaults filled in and
the optional keys commented out, and points to ``docs/configuration.md``.  The file is
created with mode 0600 (it may come to hold a database password) and never replaces
an existing one.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BadInput, OperationalError

__all__ = ["CONFIG_SKELETON", "write_skeleton"]

CONFIG_SKELETON = """\
# learnexit configuration. Every key is explained in docs/configuration.md (type,
# default, example, what it changes). Relative paths are relative to this file's folder.
# Keys commented out are optional; remove the "# " to use one.

[source]
url = "sqlite:///lms.db"                # the LMS database: any SQLAlchemy URL (or LEARNEXIT_SOURCE_URL)
# read_url = "postgresql://learnexit@replica/lms"   # a read replica the export reads; the purge never does
# schema = "public"                     # the schema whose tables are read

[state]
url = "sqlite:///learnexit-state.db"    # learnexit's ledger; PostgreSQL for a team (or LEARNEXIT_STATE_URL)

[vendor]
name = "Your company"                   # your name, on every document the customer reads

[contract]
notice_days = 30                        # days of notice before a contract period ends
export_window_days = 90                 # days after the termination date for exports
timezone = "Europe/Stockholm"           # the zone dates begin and end in
term_months = 12                        # a contract period, unless the source says
# table = "contracts"                   # a source table with each customer's contract start:
# customer_column = "organisation_id"   #   the column referencing the customer's row
# start_column = "starts_on"            #   the start date
# term_column = "term_months"           #   the period in months

[customer]
table = "organisations"                 # the tenant table: one row per customer
key = "slug"                            # the column people type: `learnexit export acme`
# name_column = "name"                  # the customer's name on the documents
# name = "Skolverket"                   # tenancy "database": the name written out, or
# name_query = "SELECT fullname FROM course WHERE id = 1"   # ...read from its own database
tenancy = "shared"                      # or "database": one database per customer ({customer} in the URL)

# References the database does not declare, one [[relations]] each:
# [[relations]]
# from = "enrolments.user_id"           # or a list for a composite key: ["t.a", "t.b"]
# to = "users.id"
# sentinels = [0]                       # values that mean "none" (Moodle's 0)

# Rules for single tables:
# [tables.invoices]
# category = "other"                    # users | courses | reports | other
# retain = "P7Y"                        # kept this long after the termination date...
# legal_basis = "Bokföringslagen (1999:1078) 7 kap. 2 §"   # ...because this law says so
# [tables.catalogue_items]
# shared = true                         # no customer's: never exported, never deleted
# [tables.users]
# owned_via = ["logins.user_id"]        # a global table: the customer's through these references
# personal_columns = ["name", "email"]  # blanked when a row must stay
# ignore_references = ["editor_id"]     # references ownership does not follow
# sentinels = { editor_id = [0] }       # per column: values that mean "no reference"
# [tables.logins]
# omit_columns = ["password_hash"]      # never exported (the rows are still deleted)
# [tables.sessions]
# export = false                        # the customer's and deleted, but not exported

# Uploaded files:
# [media]
# root = "media"                        # a folder or s3://bucket/prefix
# table = "attachments"                 # one row per file
# path_column = "storage_path"          # or path_template = "filedir/{hash[0:2]}/{hash}"
# path_template = "filedir/{contenthash[0:2]}/{contenthash[2:4]}/{contenthash}"
# name_column = "filename"              # the original name
# size_column = "size"                  # checked on export
# checksum_column = "md5"               # checked on export, with:
# checksum_algorithm = "md5"            # md5 | sha1 | sha256

# What the tables mean, for the documents (each role optional):
# [roles.people]
# table = "users"
# id = "id"
# name = "name"
# email = "email"
# nobody = [0]                          # person ids that mean no one (besides NULL)
# [roles.courses]
# table = "courses"
# id = "id"
# title = "title"
# [roles.completions]
# table = "completions"
# person = "user_id"                    # must reference [roles.people]
# course = "course_id"
# completed_at = "completed_at"
# score = "score"
# completed_only = true                 # a row counts once completed_at is set
# [roles.certificates]
# table = "certificates"
# person = "user_id"
# course = "course_id"                  # optional (badges): then title
# title = "name"                        # or "badges.name", through a reference
# issued_at = "issued_at"
# number = "code"
# [roles.quiz_results]
# table = "quiz_attempts"
# person = "user_id"
# quiz = "quiz_id"
# score = "score"
# max_score = "max_score"              # or "quizzes.max_score", through a reference
# [roles.feedback]
# table = "survey_answers"
# person = "user_id"
# question = "question"
# answer = "answer"
# [roles.activity]
# table = "activity_log"
# person = "user_id"
# at = "created_at"

# How accounts are closed (no one can sign in) before the purge:
# [closure]
# set = { "logins.workflow_state" = "deleted" }

[export]
out = "exports"                         # where packages are written
formats = ["csv", "xlsx", "json", "xml", "pdf", "docx", "media", "sql"]
sql_dialect = "sqlite"                  # sqlite | postgresql | mysql
lang = "en"                             # en | sv
batch_size = 5000                       # rows read per batch

[purge]
batch_size = 20000                      # rows deleted per transaction
# backup_note = "Database backups are kept for 35 days and expire on their own."
                                        # ^ on the deletion certificate; purge warns without it
certificates = "certificates"           # where deletion certificates are written
lock_stale_minutes = 60                 # another host's lock older than this is taken over
"""


def write_skeleton(target: Path) -> None:
    """Write ``CONFIG_SKELETON`` to ``target`` (mode 0600); BadInput if it exists."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"{target} exists already; not overwriting it") from None
    except OSError as exc:
        raise OperationalError(f"cannot write {target}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(CONFIG_SKELETON)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise OperationalError(f"cannot write {target}: {exc.strerror}") from None
