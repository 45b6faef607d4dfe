"""The ``learnexit.toml`` files the examples are written with (shared and database tenancy)."""

from __future__ import annotations

__all__ = ["LEGACY_CONFIG", "SHARED_CONFIG"]

SHARED_CONFIG = """\
[source]
url = "sqlite:///lms.db"
[state]
url = "sqlite:///learnexit-state.db"
[vendor]
name = "Lärplattformen AB"
[contract]
notice_days = 30
export_window_days = 90
timezone = "Europe/Stockholm"
term_months = 12
table = "contracts"
customer_column = "organisation_id"
start_column = "starts_on"
term_column = "term_months"
[customer]
table = "organisations"
key = "slug"
name_column = "name"
tenancy = "shared"
[tables.catalogue_items]
shared = true
[tables.developer_keys]
shared = true
[tables.users]
owned_via = ["logins.user_id", "memberships.user_id"]
personal_columns = ["name", "email", "phone"]
category = "users"
[tables.invoices]
retain = "P7Y"
legal_basis = "Bokföringslagen (1999:1078) 7 kap. 2 §"
category = "other"
[tables.page_views]
category = "reports"
[tables.activity_log]
category = "reports"
[tables.reports]
category = "reports"
[media]
root = "media"
table = "attachments"
path_column = "storage_path"
name_column = "filename"
size_column = "size"
checksum_column = "md5"
checksum_algorithm = "md5"
[roles.people]
table = "users"
id = "id"
name = "name"
email = "email"
[roles.courses]
table = "courses"
id = "id"
title = "title"
[roles.completions]
table = "completions"
person = "user_id"
course = "course_id"
completed_at = "completed_at"
score = "score"
[roles.certificates]
table = "certificates"
person = "user_id"
course = "course_id"
issued_at = "issued_at"
number = "code"
[roles.quiz_results]
table = "quiz_attempts"
person = "user_id"
quiz = "quiz_id"
score = "score"
max_score = "max_score"
[roles.feedback]
table = "survey_answers"
person = "user_id"
question = "question"
answer = "answer"
[roles.activity]
table = "activity_log"
person = "user_id"
at = "created_at"
[closure]
set = { "logins.workflow_state" = "deleted" }
[export]
out = "exports"
formats = ["csv", "xlsx", "json", "xml", "pdf", "docx", "media", "sql"]
sql_dialect = "sqlite"
lang = "en"
[purge]
batch_size = 20000
backup_note = "Database backups are kept for 35 days and expire on their own."
"""

LEGACY_CONFIG = """\
[source]
url = "sqlite:///{customer}.db"
[state]
url = "sqlite:///learnexit-state.db"
[vendor]
name = "Lärplattformen AB"
[contract]
timezone = "Europe/Stockholm"
term_months = 12
[customer]
tenancy = "database"
[[relations]]
from = "mdl_user_enrolments.userid"
to = "mdl_user.id"
[[relations]]
from = "mdl_user_enrolments.enrolid"
to = "mdl_enrol.id"
[[relations]]
from = "mdl_enrol.courseid"
to = "mdl_course.id"
[[relations]]
from = "mdl_grade_items.courseid"
to = "mdl_course.id"
[[relations]]
from = "mdl_grade_grades.itemid"
to = "mdl_grade_items.id"
[[relations]]
from = "mdl_grade_grades.userid"
to = "mdl_user.id"
[[relations]]
from = "mdl_logstore_standard_log.userid"
to = "mdl_user.id"
[[relations]]
from = "mdl_files.userid"
to = "mdl_user.id"
[tables.mdl_config]
shared = true
[media]
root = "."
table = "mdl_files"
path_template = "filedir/{contenthash[0:2]}/{contenthash[2:4]}/{contenthash}"
name_column = "filename"
size_column = "filesize"
checksum_column = "contenthash"
checksum_algorithm = "sha1"
[roles.people]
table = "mdl_user"
id = "id"
name = "username"
email = "email"
[roles.courses]
table = "mdl_course"
id = "id"
title = "fullname"
[closure]
set = { "mdl_user.deleted" = 1 }
[export]
out = "exports"
formats = ["csv", "xlsx", "json", "xml", "sql"]
sql_dialect = "sqlite"
"""
