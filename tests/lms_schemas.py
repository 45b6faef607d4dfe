"""Moodle-like and Canvas-like source databases for the config drafter's tests and bench.

The table and column names are Moodle's own (``lib/db/install.xml`` and the plugins'
``db/install.xml``: ``mdl_user``, ``mdl_logstore_standard_log.relateduserid``, …) and
Canvas's (``db/migrate``: ``users``, ``pseudonyms.crypted_password``, …), a subset of each.
The references each table declares are the ``<KEY TYPE="foreign">`` entries of those
files; the builder creates them as foreign keys only when asked (Moodle itself declares
none), so they are also the truth the drafter's findings are measured against.

Column notation: ``name`` an integer, ``name$`` text, ``name>table`` an integer
referencing ``table.id``, ``name>table.col$`` text referencing a text key, a trailing
``?`` some NULLs, ``!0`` / ``!-1`` that value as a "none" sentinel in some rows.
Every table has an integer ``id`` primary key unless it says ``nokey``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

import sqlalchemy as sa

MOODLE_PREFIX = "mdl_"

# fmt: off
MOODLE = """
config: name$ value$
config_plugins: plugin$ name$ value$
modules: name$ cron lastcron visible
block: name$ cron visible
capabilities: name$ captype$ contextlevel component$ riskbitmask
cache_flags: flagtype$ name$ timemodified value$ expiry
task_scheduled: component$ classname$ lastruntime nextruntime
upgrade_log: type plugin$ version$ info$ userid>user!0 timemodified
mnet_host: deleted wwwroot$ ip_address$ name$ public_key$
context: contextlevel instanceid path$ depth locked
user: auth$ confirmed deleted suspended mnethostid>mnet_host username$ password$ idnumber$ firstname$ lastname$ email$ secret$ lang$ timecreated timemodified lastlogin
user_preferences: userid>user name$ value$
user_info_category: name$ sortorder
user_info_field: shortname$ name$ datatype$ categoryid>user_info_category
user_info_data: userid>user fieldid>user_info_field data$
user_lastaccess: userid>user courseid>course timeaccess
user_private_key: script$ value$ userid>user instance iprestriction$ validuntil timecreated
user_password_history: userid>user hash$ timecreated
user_password_resets: userid>user timerequested timererequested token$
sessions: state sid$ userid>user!0 sessdata$ timecreated timemodified firstip$ lastip$
course_categories: name$ idnumber$ description$ parent>course_categories!0 sortorder coursecount visible depth path$
course: category>course_categories!0 sortorder fullname$ shortname$ idnumber$ summary$ format$ startdate enddate visible timecreated timemodified
course_sections: course>course section name$ summary$ sequence$ visible
course_modules: course>course module>modules instance section>course_sections idnumber$ added visible groupingid>groupings!0 completion
course_completions: userid>user course>course timeenrolled timestarted timecompleted? reaggregate
course_modules_completion: coursemoduleid>course_modules userid>user completionstate viewed overrideby>user? timemodified
course_format_options: courseid>course format$ sectionid>course_sections!0 name$ value$
role: name$ shortname$ description$ sortorder archetype$
role_assignments: roleid>role contextid>context userid>user timemodified modifierid>user!0 component$ itemid sortorder
role_capabilities: contextid>context roleid>role capability>capabilities.name$ permission timemodified modifierid>user!0
enrol: enrol$ status courseid>course sortorder name$ roleid>role!0 cost$ currency$ timecreated timemodified
user_enrolments: status enrolid>enrol userid>user timestart timeend modifierid>user!0 timecreated timemodified
groupings: courseid>course name$ idnumber$ description$ timecreated timemodified
groups: courseid>course idnumber$ name$ description$ enrolmentkey$ picture timecreated timemodified
groups_members: groupid>groups userid>user timeadded component$ itemid
groupings_groups: groupingid>groupings groupid>groups timeadded
scale: courseid>course!0 userid>user!0 name$ scale$ description$ timemodified
grade_outcomes: courseid>course? shortname$ fullname$ scaleid>scale? usermodified>user? timecreated timemodified
grade_categories: courseid>course parent>grade_categories? depth path$ fullname$ aggregation timecreated timemodified
grade_items: courseid>course? categoryid>grade_categories? itemname$ itemtype$ itemmodule$ iteminstance itemnumber idnumber$ gradetype grademax grademin scaleid>scale? outcomeid>grade_outcomes? sortorder timecreated timemodified
grade_grades: itemid>grade_items userid>user rawgrade rawgrademax usermodified>user? finalgrade hidden locked feedback$ timecreated timemodified
event: name$ description$ format courseid>course!0 groupid>groups!0 userid>user!0 repeatid modulename$ instance eventtype$ timestart timeduration
quiz: course>course name$ intro$ timeopen timeclose grade sumgrades timecreated timemodified
quiz_attempts: quiz>quiz userid>user attempt uniqueid>question_usages layout$ currentpage preview state$ timestart timefinish timemodified sumgrades?
quiz_grades: quiz>quiz userid>user grade timemodified
question_categories: name$ contextid>context info$ stamp$ parent>question_categories!0 sortorder
question: category>question_categories parent>question!0 name$ questiontext$ qtype$ defaultmark createdby>user? modifiedby>user? timecreated timemodified
question_usages: contextid>context component$ preferredbehaviour$
question_attempts: questionusageid>question_usages slot behaviour$ questionid>question variant maxmark minfraction responsesummary$ timemodified
question_attempt_steps: questionattemptid>question_attempts sequencenumber state$ fraction? timecreated userid>user?
forum: course>course type$ name$ intro$ assessed scale timemodified
forum_discussions: course>course forum>forum name$ firstpost>forum_posts userid>user groupid>groups!-1 timemodified usermodified>user timestart timeend pinned
forum_posts: discussion>forum_discussions parent>forum_posts!0 userid>user created modified mailed subject$ message$ messageformat
forum_subscriptions: userid>user forum>forum
forum_read: userid>user forumid>forum discussionid>forum_discussions postid>forum_posts firstread lastread
assign: course>course name$ intro$ duedate grade timemodified teamsubmissiongroupingid>groupings!0 maxattempts
assign_submission: assignment>assign userid>user timecreated timemodified status$ groupid>groups!0 attemptnumber latest
assign_grades: assignment>assign userid>user timecreated timemodified grader>user grade attemptnumber
choice: course>course name$ intro$ timeopen timeclose timemodified
choice_options: choiceid>choice text$ maxanswers timemodified
choice_answers: choiceid>choice userid>user optionid>choice_options timemodified
feedback: course>course name$ intro$ anonymous timemodified
feedback_item: feedback>feedback template name$ label$ presentation$ typ$ position
feedback_completed: feedback>feedback userid>user timemodified random_response anonymous_response courseid>course!0
feedback_value: course_id>course!0 item>feedback_item completed>feedback_completed tmp_completed value$
badge: name$ description$ timecreated timemodified usercreated>user usermodified>user issuername$ type courseid>course? status
badge_issued: badgeid>badge userid>user uniquehash$ dateissued dateexpire? visible issuernotified?
message_conversations: type name$ convhash$ component$ itemtype$ itemid contextid>context? enabled timecreated timemodified
message_conversation_members: conversationid>message_conversations userid>user timecreated
messages: useridfrom>user conversationid>message_conversations subject$ fullmessage$ fullmessageformat smallmessage$ timecreated
notifications: useridfrom>user useridto>user subject$ fullmessage$ component$ eventtype$ timeread? timecreated
files: contenthash$ pathnamehash$ contextid>context component$ filearea$ itemid filepath$ filename$ userid>user? filesize mimetype$ status source$ author$ license$ timecreated timemodified sortorder referencefileid
tag_coll: name$ isdefault component$ sortorder searchable customurl$
tag: userid>user tagcollid>tag_coll name$ rawname$ isstandard description$ timemodified
tag_instance: tagid>tag component$ itemtype$ itemid contextid>context? tiuserid ordering timecreated timemodified
external_services: name$ enabled requiredcapability$ restrictedusers component$ timecreated timemodified shortname$
external_tokens: token$ privatetoken$ tokentype userid>user externalserviceid>external_services sid$ contextid>context creatorid>user iprestriction$ validuntil timecreated lastaccess name$
payment_accounts: name$ idnumber$ contextid>context enabled archived timecreated timemodified
payment_gateways: accountid>payment_accounts gateway$ enabled config$ timecreated timemodified
payments: component$ paymentarea$ itemid userid>user amount$ currency$ accountid>payment_accounts gateway$ timecreated timemodified
lesson: course>course name$ intro$ grade timemodified
lesson_pages: lessonid>lesson prevpageid>lesson_pages!0 nextpageid timecreated title$ contents$
lesson_answers: lessonid>lesson pageid>lesson_pages jumpto grade score answer$ response$
lesson_attempts: lessonid>lesson pageid>lesson_pages userid>user answerid>lesson_answers retry correct useranswer$ timeseen
lesson_grades: lessonid>lesson userid>user grade late completed
lesson_timer: lessonid>lesson userid>user starttime lessontime completed
lesson_overrides: lessonid>lesson groupid>groups? userid>user? available deadline
workshop: course>course name$ intro$ grade gradinggrade timemodified
workshop_submissions: workshopid>workshop example authorid>user timecreated title$ content$ grade? gradeover? gradeoverby>user? published
workshop_assessments: submissionid>workshop_submissions reviewerid>user weight timecreated grade? gradinggrade? gradinggradeoverby>user? feedbackauthor$
wiki: course>course name$ intro$ timemodified
wiki_subwikis: wikiid>wiki groupid>groups!0 userid>user!0
wiki_pages: subwikiid>wiki_subwikis title$ cachedcontent$ timecreated timemodified userid>user pageviews
wiki_versions: pageid>wiki_pages content$ contentformat$ version userid>user timecreated
wiki_links: subwikiid>wiki_subwikis frompageid>wiki_pages topageid>wiki_pages!0 tomissingpage$
glossary: course>course name$ intro$ mainglossary timemodified
glossary_entries: glossaryid>glossary userid>user concept$ definition$ sourceglossaryid>glossary!0 approved timecreated timemodified
glossary_categories: glossaryid>glossary name$ usedynalink
glossary_entries_categories: categoryid>glossary_categories entryid>glossary_entries
glossary_alias: entryid>glossary_entries alias$
data: course>course name$ intro$ timemodified
data_fields: dataid>data type$ name$ description$
data_records: userid>user groupid>groups!0 dataid>data timecreated timemodified approved
data_content: fieldid>data_fields recordid>data_records content$
chat: course>course name$ intro$ chattime
chat_messages: chatid>chat userid>user groupid>groups!0 issystem message$ timestamp
chat_users: chatid>chat userid>user groupid>groups!0 version$ ip$ firstping lastping course>course
survey: course>course template name$ intro$ questions$
survey_questions: text$ shorttext$ multi$ intro$ type options$
survey_answers: userid>user survey>survey question>survey_questions time answer1$ answer2$
h5pactivity: course>course name$ intro$ grade timemodified
h5pactivity_attempts: h5pactivityid>h5pactivity userid>user timecreated timemodified attempt rawscore maxscore completion? success?
h5pactivity_attempts_results: attemptid>h5pactivity_attempts subcontent$ timecreated interactiontype$ description$ rawscore maxscore
book: course>course name$ intro$ timemodified
book_chapters: bookid>book pagenum subchapter title$ content$ timecreated timemodified
cohort: contextid>context name$ idnumber$ description$ visible timecreated timemodified
cohort_members: cohortid>cohort userid>user timeadded
comments: contextid>context component$ commentarea$ itemid content$ format userid>user timecreated
rating: contextid>context component$ ratingarea$ itemid scaleid>scale rating userid>user timecreated timemodified
grading_areas: contextid>context component$ areaname$ activemethod$
grading_definitions: areaid>grading_areas method$ name$ description$ status copiedfromid? timecreated usercreated>user timemodified usermodified>user timecopied
grading_instances: definitionid>grading_definitions raterid>user itemid rawgrade? status feedback$ timemodified
gradingform_rubric_criteria: definitionid>grading_definitions sortorder description$
gradingform_rubric_levels: criterionid>gradingform_rubric_criteria score definition$
gradingform_rubric_fillings: instanceid>grading_instances criterionid>gradingform_rubric_criteria levelid>gradingform_rubric_levels? remark$
badge_criteria: badgeid>badge criteriatype method description$
badge_criteria_met: issuedid>badge_issued? critid>badge_criteria userid>user datemet
badge_manual_award: badgeid>badge recipientid>user issuerid>user issuerrole>role datemet
competency_framework: shortname$ contextid>context idnumber$ description$ timecreated timemodified usermodified>user
competency: shortname$ description$ idnumber$ competencyframeworkid>competency_framework parentid>competency!0 path$ sortorder timecreated timemodified usermodified>user
competency_usercomp: userid>user competencyid>competency status reviewerid>user? proficiency? grade? timecreated timemodified usermodified>user
post: module$ userid>user courseid>course!0 groupid>groups!0 moduleid>modules!0 coursemoduleid>course_modules!0 subject$ summary$ content$ created lastmodified usermodified>user?
logstore_standard_log: eventname$ component$ action$ target$ objecttable$ objectid crud$ edulevel contextid>context contextlevel contextinstanceid userid>user!0 courseid>course!0 relateduserid>user? anonymous other$ timecreated origin$ ip$ realuserid>user?
"""
# fmt: on

# Canvas (instructure/canvas-lms, db/migrate): shared tenancy, the root account is the
# customer; most tables carry root_account_id.  Declared foreign keys as Canvas's
# migrations add them; context_id is polymorphic (context_type) and has none.
CANVAS = """
accounts: name$ uuid$ parent_account_id>accounts root_account_id>accounts workflow_state$ default_time_zone$ lti_guid$
users: name$ sortable_name$ short_name$ workflow_state$ uuid$ time_zone$ created_at
communication_channels: user_id>users path$ path_type$ workflow_state$ confirmation_code$
pseudonyms: user_id>users account_id>accounts unique_id$ crypted_password$ password_salt$ persistence_token$ single_access_token$ perishable_token$ workflow_state$ sis_user_id$ communication_channel_id>communication_channels last_login_at
user_account_associations: user_id>users account_id>accounts depth
roles: name$ account_id>accounts root_account_id>accounts workflow_state$ base_role_type$
account_users: account_id>accounts user_id>users role_id>roles workflow_state$ root_account_id>accounts
enrollment_terms: root_account_id>accounts name$ start_at end_at workflow_state$
courses: name$ account_id>accounts root_account_id>accounts enrollment_term_id>enrollment_terms course_code$ workflow_state$ uuid$ created_at
course_sections: course_id>courses root_account_id>accounts name$ workflow_state$
enrollments: user_id>users course_id>courses course_section_id>course_sections root_account_id>accounts type$ workflow_state$ role_id>roles completed_at
assignment_groups: context_id context_type$ name$ root_account_id>accounts
assignments: context_id context_type$ title$ points_possible assignment_group_id>assignment_groups root_account_id>accounts workflow_state$ due_at
submissions: assignment_id>assignments user_id>users course_id>courses root_account_id>accounts score grade$ workflow_state$ submitted_at
quizzes: context_id context_type$ title$ assignment_id>assignments? points_possible root_account_id>accounts workflow_state$
quiz_submissions: quiz_id>quizzes user_id>users submission_id>submissions? score kept_score quiz_points_possible workflow_state$ root_account_id>accounts finished_at
discussion_topics: context_id context_type$ title$ message$ user_id>users? root_account_id>accounts workflow_state$
discussion_entries: discussion_topic_id>discussion_topics user_id>users parent_id>discussion_entries? message$ root_account_id>accounts workflow_state$
attachments: context_id context_type$ filename$ display_name$ size md5$ content_type$ root_account_id>accounts user_id>users? workflow_state$
page_views: user_id>users account_id>accounts context_id context_type$ url$ controller$ created_at
access_tokens: user_id>users developer_key_id>developer_keys crypted_token$ token_hint$ purpose$ root_account_id>accounts
developer_keys: api_key$ name$ redirect_uri$ email$
rubrics: context_id context_type$ user_id>users? title$ points_possible root_account_id>accounts
rubric_assessments: rubric_id>rubrics user_id>users? assessor_id>users? artifact_id artifact_type$ score root_account_id>accounts
calendar_events: context_id context_type$ user_id>users? title$ start_at end_at root_account_id>accounts workflow_state$
wikis: title$ root_account_id>accounts
wiki_pages: wiki_id>wikis title$ body$ user_id>users? root_account_id>accounts workflow_state$
context_modules: context_id context_type$ name$ position root_account_id>accounts workflow_state$
content_tags: context_id context_type$ content_id content_type$ context_module_id>context_modules? root_account_id>accounts tag_type$
learning_outcomes: short_description$ root_account_id>accounts
learning_outcome_results: user_id>users learning_outcome_id>learning_outcomes score root_account_id>accounts
settings: name$ value$
delayed_jobs: priority handler$ run_at queue$
"""
CANVAS_ROWS = {
    "accounts": 4,
    "users": 30,
    "pseudonyms": 30,
    "communication_channels": 30,
    "courses": 5,
    "roles": 4,
    "enrollment_terms": 2,
}


def build_canvas(url: str, *, tenants: int = 2, declare_keys: bool = True, seed: int = 1) -> dict[str, int]:
    """Canvas-like tenants in one database: each tenant's rows (its own people too) point
    only at its own rows; the global tables (settings, delayed_jobs, developer_keys) are
    filled once."""
    tables = parse(CANVAS)
    engine = sa.create_engine(url)
    counts: dict[str, int] = {}
    try:
        md = create_schema(engine, tables, "", declare_keys)
        glob = {"settings", "delayed_jobs", "developer_keys"}
        shared_tables = [t for t in tables if t.name in glob]
        fill(engine, md, shared_tables, "", site=1, rows=CANVAS_ROWS, seed=seed, declared=declare_keys)
        for tenant in range(1, tenants + 1):
            mine = [t for t in tables if t.name not in glob]
            for name, n in fill(
                engine, md, mine, "", site=tenant + 1, rows=CANVAS_ROWS, seed=seed, declared=declare_keys, known=glob
            ).items():
                counts[name] = counts.get(name, 0) + n
        return counts
    finally:
        engine.dispose()


# Rows per table (the rest get DEFAULT_ROWS); the log table's size is a parameter.
MOODLE_ROWS = {"user": 40, "course": 6, "course_categories": 4, "modules": 8, "role": 5, "config": 12}
DEFAULT_ROWS = 24
LOG_TABLE = "logstore_standard_log"

# What a correct Moodle offboarding needs by hand on top of the draft: the people's
# display names and the legal basis of the retained payments (tests count these lines).


@dataclass
class Column:
    name: str
    text: bool = False
    target: str | None = None  # referenced table
    target_col: str = "id"
    nullable: bool = False
    sentinel: int | None = None


@dataclass
class TableSpec:
    name: str
    columns: list[Column] = field(default_factory=list)

    def refs(self) -> list[Column]:
        return [c for c in self.columns if c.target]


_COLUMN = re.compile(r"^(\w+?)(\$)?(?:>(\w+)(?:\.(\w+))?(\$)?)?(\?)?(?:!(-?\d+))?$")


def parse(spec: str) -> list[TableSpec]:
    tables = []
    for line in spec.strip().splitlines():
        name, _, cols = line.partition(":")
        table = TableSpec(name.strip())
        for word in cols.split():
            m = _COLUMN.match(word)
            assert m, word
            col, text1, target, tcol, text2, nullable, sentinel = m.groups()
            table.columns.append(
                Column(
                    col,
                    text=bool(text1 or text2),
                    target=target,
                    target_col=tcol or "id",
                    nullable=bool(nullable),
                    sentinel=int(sentinel) if sentinel is not None else None,
                )
            )
        tables.append(table)
    return tables


def synthetic_plugins(count: int) -> str:
    """``count`` made-up activity plugins of five tables each, shaped like Moodle's (to
    reach the size of a real site, ~480 tables, in the bench; the names are not Moodle's)."""
    lines = []
    for k in range(1, count + 1):
        m = f"plug{k}"
        lines += [
            f"{m}: course>course name$ intro$ grade timemodified",
            f"{m}_items: {m}id>{m} name$ sortorder",
            f"{m}_attempts: {m}id>{m} userid>user itemid>{m}_items? attempt timecreated",
            f"{m}_grades: {m}id>{m} userid>user grade timemodified",
            f"{m}_log: userid>user!0 {m}id>{m} action$ timecreated",
        ]
    return "\n".join(lines)


def moodle_tables(plugins: int = 0) -> list[TableSpec]:
    return parse(MOODLE + ("\n" + synthetic_plugins(plugins) if plugins else ""))


def declared_references(tables: list[TableSpec], prefix: str) -> set[tuple[str, str, str, str]]:
    """The schema's own references: (from table, column, to table, column)."""
    return {(prefix + t.name, c.name, prefix + (c.target or ""), c.target_col) for t in tables for c in t.refs()}


def _order(tables: list[TableSpec]) -> list[TableSpec]:
    by_name = {t.name: t for t in tables}
    done: list[TableSpec] = []
    seen: set[str] = set()

    def visit(t: TableSpec, stack: frozenset[str]) -> None:
        if t.name in seen or t.name in stack:
            return
        for c in t.refs():
            if c.target != t.name and c.target in by_name:
                visit(by_name[c.target], stack | {t.name})
        seen.add(t.name)
        done.append(t)

    for t in tables:
        visit(t, frozenset())
    return done


def create_schema(engine: sa.Engine, tables: list[TableSpec], prefix: str, declare_keys: bool) -> sa.MetaData:
    md = sa.MetaData()
    for t in tables:
        cols: list[sa.Column[object]] = [
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
        ]
        for c in t.columns:
            kind: sa.types.TypeEngine[object] = sa.String(255) if c.text else sa.BigInteger()
            args: list[object] = []
            if declare_keys and c.target:
                args.append(sa.ForeignKey(f"{prefix}{c.target}.{c.target_col}", use_alter=True))
            unique = t.name == "capabilities" and c.name == "name"
            cols.append(sa.Column(c.name, kind, *args, nullable=True, unique=unique))  # type: ignore[arg-type]
        sa.Table(prefix + t.name, md, *cols)
    md.create_all(engine)
    return md


def fill(
    engine: sa.Engine,
    md: sa.MetaData,
    tables: list[TableSpec],
    prefix: str,
    *,
    site: int,
    rows: dict[str, int],
    log_table: str | None = None,
    log_rows: int = 0,
    seed: int = 1,
    declared: bool = False,
    known: set[str] | None = None,
) -> dict[str, int]:
    """Plausible rows: every reference points at an existing row (or is NULL / its
    sentinel); ids of different sites differ so a mix-up shows.  Returns rows per table."""
    rnd = random.Random(seed * 1000 + site)
    ids: dict[str, list[int]] = {}
    texts: dict[tuple[str, str], list[str]] = {}
    if known:  # tables filled by an earlier call (global rows every tenant may point at)
        with engine.connect() as conn:
            for name in known:
                table = md.tables[prefix + name]
                ids[name] = [int(r[0]) for r in conn.execute(sa.select(table.c.id))]
    counts: dict[str, int] = {}
    ordered = _order(tables)
    deferred: list[tuple[str, str, str]] = []  # cyclic references filled after the targets exist
    with engine.begin() as conn:
        for t in ordered:
            n = log_rows if t.name == log_table else rows.get(t.name, DEFAULT_ROWS)
            base = (site - 1) * 100_000
            table = md.tables[prefix + t.name]
            batch: list[dict[str, object]] = []
            for i in range(1, n + 1):
                row: dict[str, object] = {"id": base + i}
                for c in t.columns:
                    row[c.name] = _value(rnd, t, c, i, site, ids, texts, deferred)
                    if declared and c.target and row[c.name] == c.sentinel:
                        row[c.name] = None  # a declared key cannot hold "none" values: NULL
                batch.append(row)
                if len(batch) == 5000:
                    conn.execute(table.insert(), batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
            ids[t.name] = [base + i for i in range(1, n + 1)]
            counts[prefix + t.name] = n
            for c in t.columns:
                if c.text:
                    texts[(t.name, c.name)] = [f"{t.name}-{c.name}-{site}-{i}" for i in range(1, n + 1)]
        for tname, cname, target in sorted(set(deferred)):
            table = md.tables[prefix + tname]
            for key in ids[tname]:
                conn.execute(table.update().where(table.c.id == key).values({cname: rnd.choice(ids[target])}))
    return counts


def _value(
    rnd: random.Random,
    t: TableSpec,
    c: Column,
    i: int,
    site: int,
    ids: dict[str, list[int]],
    texts: dict[tuple[str, str], list[str]],
    deferred: list[tuple[str, str, str]],
) -> object:
    if c.target:
        if c.nullable and rnd.random() < 0.25:
            return None
        if c.sentinel is not None and rnd.random() < 0.3:
            return c.sentinel
        if c.target == t.name:  # a tree: point at an earlier row, the first rows are roots
            return (
                (site - 1) * 100_000 + rnd.randint(1, i - 1)
                if i > 1
                else (c.sentinel if c.sentinel is not None else None)
            )
        if c.text:
            return rnd.choice(texts[(c.target, c.target_col)])
        if c.target not in ids:  # a cycle (forum_discussions.firstpost): filled in afterwards
            deferred.append((t.name, c.name, c.target))
            return None
        if c.target == "accounts" and t.name not in ("accounts", "courses"):
            # Canvas: root_account_id (and the account of a login, a role, a page view) is
            # the tenant's root account; sub-accounts hold courses
            return ids[c.target][0]
        if (t.name, c.name) in (("pseudonyms", "user_id"), ("pseudonyms", "communication_channel_id")):
            # every Canvas user has a login, and it names the user's e-mail channel
            return ids[c.target][(i - 1) % len(ids[c.target])]
        return rnd.choice(ids[c.target])
    if c.text:
        if (t.name, c.name) == ("course", "format") and i == 1:
            return "site"  # Moodle's front page: the course with format "site" holds the site's name
        return f"{t.name}-{c.name}-{site}-{i}"
    if c.name.startswith("time") or c.name in ("added", "created", "modified", "dateissued"):
        return 1_700_000_000 + rnd.randint(0, 10_000_000)
    # polymorphic ids and counters look like ids too: a drafter must not take them for references
    return rnd.randint(0, 60) + ((site - 1) * 100_000 if c.name in ("itemid", "instance", "objectid") else 0)


def build_moodle(
    url: str, *, site: int = 1, declare_keys: bool = False, log_rows: int = 2000, seed: int = 1, plugins: int = 0
) -> dict[str, int]:
    """A Moodle-like site database at ``url`` (created empty beforehand)."""
    tables = moodle_tables(plugins)
    engine = sa.create_engine(url)
    try:
        md = create_schema(engine, tables, MOODLE_PREFIX, declare_keys)
        return fill(
            engine,
            md,
            tables,
            MOODLE_PREFIX,
            site=site,
            rows=MOODLE_ROWS,
            log_table=LOG_TABLE,
            log_rows=log_rows,
            seed=seed,
            declared=declare_keys,
        )
    finally:
        engine.dispose()
