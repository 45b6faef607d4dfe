/* learnexit._speedups: the CSV, SQL and Excel writers' inner loop in C.
 *
 * Each function takes one batch as its columns (sequences of equal length) and writes
 * the batch's records (CSV records, INSERT statements, worksheet rows), a row at a time,
 * into one buffer, which it returns as UTF-8 bytes.  They only handle the values whose
 * text is unambiguous (NULL, exact int, str, bool, float, naive datetime, date; for Excel
 * only what its sanitiser leaves unchanged) and write them exactly as the Python writers
 * do (learnexit/exporters/csv_format.py, sql_format.py and xlsx_format.py;
 * tests/test_speedups.py compares the two on generated batches).  A column holding
 * anything else -- a Decimal, a datetime with a time zone, a string with a lone
 * surrogate, a string SQLite or PostgreSQL needs spliced -- makes the function return
 * that column's index (an int): the caller converts that column in Python, marks it
 * "verbatim" and calls again.  Verbatim columns hold finished text (a CSV field, an SQL
 * literal, an Excel cell), copied as is; if
 * such text cannot be encoded as UTF-8, UnicodeEncodeError propagates (the caller then
 * redoes the batch value by value, replacing and counting lone surrogates).
 *
 * sqlite_csv and sqlite_inserts read a SQLite statement on the sqlite3 module's own
 * handle; pg_copy_csv reads PostgreSQL's COPY on psycopg's own PGconn (libpq bound once by
 * pg_bind) and writes the CSV writer's records from the server's text.  Apart from the
 * bound library functions nothing is kept between calls; the GIL is held throughout,
 * except while pg_copy_csv waits for the server.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <limits.h>
#include <string.h>

/* ------------------------------------------------------------------ a growing buffer */

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_char(Buf *b, char c) {
    if (buf_reserve(b, 1) < 0)
        return -1;
    b->data[b->len++] = c;
    return 0;
}

static void buf_free(Buf *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ values as text */

enum { DONE = 0, ERROR = -1, UNHANDLED = 1 };

static int put_int64(Buf *b, long long n) {
    char digits[24];
    int i = (int)sizeof(digits);
    unsigned long long m = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    do {
        digits[--i] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (n < 0)
        digits[--i] = '-';
    return buf_put(b, digits + i, (Py_ssize_t)sizeof(digits) - i);
}

static int put_int(Buf *b, PyObject *v) {
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (n == -1 && PyErr_Occurred())
        return ERROR;
    if (overflow) { /* beyond 64 bits: Python's own decimal text */
        PyObject *s = PyObject_Str(v);
        if (s == NULL)
            return ERROR;
        Py_ssize_t size;
        const char *u = PyUnicode_AsUTF8AndSize(s, &size);
        int rc = u == NULL ? ERROR : buf_put(b, u, size);
        Py_DECREF(s);
        return rc;
    }
    return put_int64(b, n);
}

static int put_double(Buf *b, double v) { /* repr(); only finite values come here */
    char *s = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s == NULL)
        return ERROR;
    int rc = buf_put(b, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

static int put_float(Buf *b, PyObject *v) { return put_double(b, PyFloat_AS_DOUBLE(v)); }

static int put_date(Buf *b, int y, int m, int d) { /* date.isoformat(): year zero-padded to 4 */
    char s[16];
    int n = snprintf(s, sizeof(s), "%04d-%02d-%02d", y, m, d);
    return buf_put(b, s, n);
}

/* A naive datetime as isoformat(sep): microseconds only when not zero, unless always. */
static int put_datetime(Buf *b, PyObject *v, char sep, int always_micro) {
    char s[48];
    int us = PyDateTime_DATE_GET_MICROSECOND(v);
    int n = snprintf(s, sizeof(s), "%04d-%02d-%02d%c%02d:%02d:%02d", PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v),
                     PyDateTime_GET_DAY(v), sep, PyDateTime_DATE_GET_HOUR(v), PyDateTime_DATE_GET_MINUTE(v),
                     PyDateTime_DATE_GET_SECOND(v));
    if (us || always_micro)
        n += snprintf(s + n, sizeof(s) - (size_t)n, ".%06d", us);
    return buf_put(b, s, n);
}

static inline int naive(PyObject *v) { return PyDateTime_DATE_GET_TZINFO(v) == Py_None; }

/* The UTF-8 of an exact str, or NULL with no error set when it holds a lone surrogate. */
static const char *utf8(PyObject *v, Py_ssize_t *size) {
    const char *u = PyUnicode_AsUTF8AndSize(v, size);
    if (u == NULL && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
        PyErr_Clear();
    return u;
}

/* ------------------------------------------------------------------ batches */

typedef struct {
    Py_ssize_t ncols, nrows;
    PyObject *columns;    /* a tuple: the columns as given */
    PyObject **values;    /* a tuple per column: its values */
    PyObject ***items;    /* their item arrays */
    char *verbatim;       /* one flag per column */
} Batch;

static void batch_free(Batch *t) {
    if (t->values != NULL)
        for (Py_ssize_t c = 0; c < t->ncols; c++)
            Py_XDECREF(t->values[c]);
    Py_XDECREF(t->columns);
    PyMem_Free(t->values);
    PyMem_Free(t->items);
    PyMem_Free(t->verbatim);
}

/* The batch's columns as tuples (copies: nothing Python code does while the flags are read
 * or a column is iterated can change what is written, or free what is read), their flags. */
static int batch_open(Batch *t, PyObject *columns, PyObject *verbatim) {
    memset(t, 0, sizeof(*t));
    if (!PyList_Check(columns) && !PyTuple_Check(columns)) {
        PyErr_SetString(PyExc_TypeError, "columns must be a list or tuple of sequences");
        return -1;
    }
    t->columns = PySequence_Tuple(columns);
    if (t->columns == NULL)
        return -1;
    Py_ssize_t ncols = PyTuple_GET_SIZE(t->columns);
    if (ncols == 0) {
        PyErr_SetString(PyExc_ValueError, "a batch needs at least one column");
        return -1;
    }
    Py_ssize_t nflags = PySequence_Size(verbatim);
    if (nflags < 0)
        return -1;
    if (nflags != ncols) {
        PyErr_SetString(PyExc_ValueError, "one verbatim flag per column");
        return -1;
    }
    t->values = PyMem_Calloc((size_t)ncols, sizeof(PyObject *));
    t->items = PyMem_Calloc((size_t)ncols, sizeof(PyObject **));
    t->verbatim = PyMem_Calloc((size_t)ncols, 1);
    if (t->values == NULL || t->items == NULL || t->verbatim == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->ncols = ncols;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        PyObject *flag = PySequence_GetItem(verbatim, c);
        if (flag == NULL)
            return -1;
        int set = PyObject_IsTrue(flag);
        Py_DECREF(flag);
        if (set < 0)
            return -1;
        t->verbatim[c] = (char)set;
    }
    for (Py_ssize_t c = 0; c < ncols; c++) {
        PyObject *column = PyTuple_GET_ITEM(t->columns, c);
        if (!PySequence_Check(column) && !PyIter_Check(column)) {
            PyErr_SetString(PyExc_TypeError, "a column must be a sequence");
            return -1;
        }
        t->values[c] = PySequence_Tuple(column);
        if (t->values[c] == NULL)
            return -1;
    }
    t->nrows = PyTuple_GET_SIZE(t->values[0]);
    for (Py_ssize_t c = 0; c < ncols; c++) {
        if (PyTuple_GET_SIZE(t->values[c]) != t->nrows) {
            PyErr_SetString(PyExc_ValueError, "columns of different lengths");
            return -1;
        }
        t->items[c] = PySequence_Fast_ITEMS(t->values[c]);
    }
    return 0;
}

/* Verbatim text: a str copied as UTF-8 (UnicodeEncodeError propagates). */
static int put_verbatim(Buf *b, PyObject *v) {
    if (!PyUnicode_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "a verbatim column must hold str");
        return ERROR;
    }
    Py_ssize_t size;
    const char *u = PyUnicode_AsUTF8AndSize(v, &size);
    if (u == NULL)
        return ERROR;
    return buf_put(b, u, size);
}

/* ------------------------------------------------------------------ CSV */

static int csv_text(Buf *b, const char *u, Py_ssize_t size) {
    int quote = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        char ch = u[i];
        if (ch == '"' || ch == ',' || ch == '\r' || ch == '\n') {
            quote = 1;
            break;
        }
    }
    if (!quote)
        return buf_put(b, u, size);
    if (buf_reserve(b, 2 * size + 2) < 0)
        return ERROR;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        if (u[i] == '"')
            *out++ = '"';
        *out++ = u[i];
    }
    *out++ = '"';
    b->len = out - b->data;
    return DONE;
}

static int csv_value(Buf *b, PyObject *v) {
    if (v == Py_None)
        return DONE;
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t size;
        const char *u = utf8(v, &size);
        if (u == NULL)
            return PyErr_Occurred() ? ERROR : UNHANDLED;
        return csv_text(b, u, size);
    }
    if (PyBool_Check(v))
        return v == Py_True ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
    if (PyLong_CheckExact(v))
        return put_int(b, v);
    if (PyFloat_CheckExact(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        if (isnan(d))
            return buf_put(b, "NaN", 3);
        if (isinf(d))
            return d > 0 ? buf_put(b, "Infinity", 8) : buf_put(b, "-Infinity", 9);
        return put_float(b, v);
    }
    if (PyDateTime_CheckExact(v))
        return naive(v) ? put_datetime(b, v, 'T', 0) : UNHANDLED;
    if (PyDate_CheckExact(v))
        return put_date(b, PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v));
    return UNHANDLED;
}

PyDoc_STRVAR(csv_records_doc,
             "csv_records(columns, verbatim) -> bytes | int\n\n"
             "The batch's CSV records (fields joined by ',', each record ended by CRLF) as\n"
             "UTF-8, or the index of the first column holding a value this function leaves to\n"
             "Python.  Columns flagged verbatim hold finished CSV fields.");

static PyObject *csv_records(PyObject *self, PyObject *args) {
    PyObject *columns, *verbatim;
    if (!PyArg_ParseTuple(args, "OO:csv_records", &columns, &verbatim))
        return NULL;
    Batch t;
    Buf b = {0};
    PyObject *result = NULL;
    if (batch_open(&t, columns, verbatim) < 0)
        goto done;
    for (Py_ssize_t r = 0; r < t.nrows; r++) {
        for (Py_ssize_t c = 0; c < t.ncols; c++) {
            if (c && buf_char(&b, ',') < 0)
                goto done;
            Py_ssize_t start = b.len;
            PyObject *v = t.items[c][r];
            int rc = t.verbatim[c] ? put_verbatim(&b, v) : csv_value(&b, v);
            if (rc == ERROR)
                goto done;
            if (rc == UNHANDLED) {
                result = PyLong_FromSsize_t(c);
                goto done;
            }
            /* csv.writer quotes a record of one empty field (it would be a blank line) */
            if (t.ncols == 1 && b.len == start && buf_put(&b, "\"\"", 2) < 0)
                goto done;
        }
        if (buf_put(&b, "\r\n", 2) < 0)
            goto done;
    }
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    buf_free(&b);
    batch_free(&t);
    return result;
}

/* ------------------------------------------------------------------ SQL */

enum { SQLITE = 0, POSTGRESQL = 1, MYSQL = 2 };

static int sql_string(Buf *b, const char *u, Py_ssize_t size, int dialect) {
    if (buf_reserve(b, 2 * size + 2) < 0)
        return ERROR;
    char *out = b->data + b->len;
    *out++ = '\'';
    for (Py_ssize_t i = 0; i < size; i++) {
        char ch = u[i];
        if (ch == '\'') {
            *out++ = '\'';
        } else if (ch == '\r' || ch == '\0') {
            if (dialect != MYSQL)
                return UNHANDLED; /* escape string / char() splices: Python's */
            *out++ = '\\';
            ch = ch == '\r' ? 'r' : '0';
        } else if (dialect == MYSQL && (ch == '\\' || ch == '\x1a')) {
            *out++ = '\\';
            ch = ch == '\\' ? '\\' : 'Z';
        }
        *out++ = ch;
    }
    *out++ = '\'';
    b->len = out - b->data;
    return DONE;
}

static int sql_value(Buf *b, PyObject *v, int dialect) {
    if (v == Py_None)
        return buf_put(b, "NULL", 4);
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t size;
        const char *u = utf8(v, &size);
        if (u == NULL)
            return PyErr_Occurred() ? ERROR : UNHANDLED;
        return sql_string(b, u, size, dialect);
    }
    if (PyBool_Check(v))
        return buf_char(b, v == Py_True ? '1' : '0');
    if (PyLong_CheckExact(v))
        return put_int(b, v);
    if (PyFloat_CheckExact(v))
        return isfinite(PyFloat_AS_DOUBLE(v)) ? put_float(b, v) : UNHANDLED;
    if (PyDateTime_CheckExact(v)) {
        if (!naive(v))
            return UNHANDLED;
        if (buf_char(b, '\'') < 0 || put_datetime(b, v, ' ', dialect == SQLITE) < 0)
            return ERROR;
        return buf_char(b, '\'');
    }
    if (PyDate_CheckExact(v)) {
        if (buf_char(b, '\'') < 0 ||
            put_date(b, PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)) < 0)
            return ERROR;
        return buf_char(b, '\'');
    }
    return UNHANDLED;
}

static Py_ssize_t code_points(const char *s, Py_ssize_t n) {
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

PyDoc_STRVAR(sql_inserts_doc,
             "sql_inserts(columns, verbatim, dialect, head, max_rows, max_chars) -> bytes | int\n\n"
             "The batch as multi-row INSERT statements (head + '(v, ...),\\n(...)' + ';\\n'), a\n"
             "statement ended after max_rows rows or once its rows' text reaches max_chars\n"
             "characters; dialect 0 SQLite, 1 PostgreSQL, 2 MySQL.  Or the index of the first\n"
             "column holding a value this function leaves to Python.  Columns flagged verbatim\n"
             "hold finished SQL literals.");

static PyObject *sql_inserts(PyObject *self, PyObject *args) {
    PyObject *columns, *verbatim;
    int dialect;
    const char *head;
    Py_ssize_t head_len, max_rows, max_chars;
    if (!PyArg_ParseTuple(args, "OOis#nn:sql_inserts", &columns, &verbatim, &dialect, &head, &head_len, &max_rows,
                          &max_chars))
        return NULL;
    if (dialect < SQLITE || dialect > MYSQL) {
        PyErr_SetString(PyExc_ValueError, "dialect must be 0 (SQLite), 1 (PostgreSQL) or 2 (MySQL)");
        return NULL;
    }
    Batch t;
    Buf b = {0};
    PyObject *result = NULL;
    if (batch_open(&t, columns, verbatim) < 0)
        goto done;
    Py_ssize_t in_statement = 0, size = 0;
    for (Py_ssize_t r = 0; r < t.nrows; r++) {
        if (in_statement == 0) {
            if (buf_put(&b, head, head_len) < 0)
                goto done;
        } else if (buf_put(&b, ",\n", 2) < 0) {
            goto done;
        }
        Py_ssize_t start = b.len;
        if (buf_char(&b, '(') < 0)
            goto done;
        for (Py_ssize_t c = 0; c < t.ncols; c++) {
            if (c && buf_put(&b, ", ", 2) < 0)
                goto done;
            PyObject *v = t.items[c][r];
            int rc = t.verbatim[c] ? put_verbatim(&b, v) : sql_value(&b, v, dialect);
            if (rc == ERROR)
                goto done;
            if (rc == UNHANDLED) {
                result = PyLong_FromSsize_t(c);
                goto done;
            }
        }
        if (buf_char(&b, ')') < 0)
            goto done;
        in_statement++;
        size += code_points(b.data + start, b.len - start);
        if (in_statement >= max_rows || size >= max_chars) {
            if (buf_put(&b, ";\n", 2) < 0)
                goto done;
            in_statement = size = 0;
        }
    }
    if (in_statement && buf_put(&b, ";\n", 2) < 0)
        goto done;
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    buf_free(&b);
    batch_free(&t);
    return result;
}

/* ------------------------------------------------------------------ Excel sheet rows */

#define EXCEL_TEXT_MAX (32767 / 2) /* longer strings: Python checks their UTF-16 length */
#define EXCEL_INT_LIMIT 1000000000000000LL /* 10**15: Excel keeps 15 digits */

/* Days from 0001-01-01 (day 1) to y-m-d, as date.toordinal(). */
static long ordinal(int y, int m, int d) {
    static const int before[] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    long p = y - 1;
    long days = p * 365 + p / 4 - p / 100 + p / 400 + before[m] + d;
    if (m > 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        days += 1;
    return days;
}

#define EXCEL_EPOCH_ORDINAL 693594L /* date(1899, 12, 30).toordinal() */

/* xlsx_format.serial(): days since 1899-12-30 (less Excel's phantom 1900-02-29 up to
 * day 60) + the time of day's seconds (+ microseconds / 10**6) / 86,400, in the same
 * operations, written as "%.16g" % serial. */
static int put_serial(Buf *b, long days, long seconds, int us) {
    if (0 < days && days <= 60)
        days -= 1;
    double fraction = us ? ((double)seconds + (double)us / 1e6) / 86400.0 : (double)seconds / 86400.0;
    char *s = PyOS_double_to_string((double)days + fraction, 'g', 16, 0, NULL);
    if (s == NULL)
        return ERROR;
    int rc = buf_put(b, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

/* Whether a str holds only what XML 1.0 (and so Excel) can hold, and is short enough to
 * need no UTF-16 count; *space: it begins or ends with white space (str.strip's). */
static int excel_text_ok(PyObject *v, int *space) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(v);
    if (n > EXCEL_TEXT_MAX)
        return 0;
    int kind = PyUnicode_KIND(v);
    const void *data = PyUnicode_DATA(v);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch < 0x20 ? (ch != '\t' && ch != '\n' && ch != '\r')
                      : ((ch >= 0xD800 && ch <= 0xDFFF) || ch == 0xFFFE || ch == 0xFFFF))
            return 0;
    }
    *space = n > 0 && (Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, 0)) ||
                       Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, n - 1)));
    return 1;
}

/* Text for an element: & < > and CR escaped, as _TEXT_ESCAPES. */
static int xml_text(Buf *b, const char *u, Py_ssize_t size) {
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        const char *esc;
        Py_ssize_t n;
        switch (u[i]) {
        case '&': esc = "&amp;"; n = 5; break;
        case '<': esc = "&lt;"; n = 4; break;
        case '>': esc = "&gt;"; n = 4; break;
        case '\r': esc = "&#13;"; n = 5; break;
        default: continue;
        }
        if (buf_put(b, u + start, i - start) < 0 || buf_put(b, esc, n) < 0)
            return ERROR;
        start = i + 1;
    }
    return buf_put(b, u + start, size - start);
}

/* The start of a cell, '<c r="B17"', then attrs (e.g. ' t="n"><v>'). */
static int cell_start(Buf *b, const char *letter, Py_ssize_t nletter, const char *row, int nrow, const char *attrs) {
    if (buf_put(b, "<c r=\"", 6) < 0 || buf_put(b, letter, nletter) < 0 || buf_put(b, row, nrow) < 0)
        return ERROR;
    return buf_put(b, attrs, (Py_ssize_t)strlen(attrs));
}

/* Whether every item of the tuple letters is a non-empty ASCII str (a cell reference's
 * column); 0 with an error set when one is not. */
static int letters_ok(PyObject *letters) {
    for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(letters); c++) {
        PyObject *letter = PyTuple_GET_ITEM(letters, c);
        if (!PyUnicode_Check(letter) || !PyUnicode_IS_ASCII(letter) || PyUnicode_GET_LENGTH(letter) == 0) {
            PyErr_SetString(PyExc_ValueError, "column letters must be non-empty ASCII str");
            return 0;
        }
    }
    return 1;
}

/* '<row r="N">' onto b, N's digits in row (24 bytes): their count, or -1 (no memory). */
static int row_start(Buf *b, Py_ssize_t number, char *row) {
    int nrow = snprintf(row, 24, "%zd", number);
    if (buf_put(b, "<row r=\"", 8) < 0 || buf_put(b, row, nrow) < 0 || buf_put(b, "\">", 2) < 0)
        return -1;
    return nrow;
}

/* One value as xlsx_format.cell writes what Sanitiser.excel leaves unchanged; what the
 * sanitiser would change (or note) is UNHANDLED. */
static int excel_cell(Buf *b, PyObject *v, const char *letter, Py_ssize_t nletter, const char *row, int nrow) {
    if (v == Py_None)
        return DONE;
    if (PyUnicode_CheckExact(v)) {
        if (PyUnicode_GET_LENGTH(v) == 0)
            return DONE;
        int space;
        if (!excel_text_ok(v, &space))
            return UNHANDLED;
        Py_ssize_t size;
        const char *u = PyUnicode_AsUTF8AndSize(v, &size); /* (no surrogates: checked) */
        if (u == NULL)
            return ERROR;
        if (cell_start(b, letter, nletter, row, nrow,
                       space ? "\" t=\"inlineStr\"><is><t xml:space=\"preserve\">" : "\" t=\"inlineStr\"><is><t>") < 0 ||
            xml_text(b, u, size) < 0)
            return ERROR;
        return buf_put(b, "</t></is></c>", 13);
    }
    if (PyBool_Check(v)) {
        if (cell_start(b, letter, nletter, row, nrow, "\" t=\"b\"><v>") < 0)
            return ERROR;
        return buf_put(b, v == Py_True ? "1</v></c>" : "0</v></c>", 9);
    }
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred())
            return ERROR;
        if (overflow || n <= -EXCEL_INT_LIMIT || n >= EXCEL_INT_LIMIT)
            return UNHANDLED;
        if (cell_start(b, letter, nletter, row, nrow, "\" t=\"n\"><v>") < 0 || put_int(b, v) < 0)
            return ERROR;
        return buf_put(b, "</v></c>", 8);
    }
    if (PyDateTime_CheckExact(v)) {
        int y = PyDateTime_GET_YEAR(v);
        if (!naive(v) || y < 1900)
            return UNHANDLED;
        long days = ordinal(y, PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)) - EXCEL_EPOCH_ORDINAL;
        long seconds = PyDateTime_DATE_GET_HOUR(v) * 3600L + PyDateTime_DATE_GET_MINUTE(v) * 60L +
                       PyDateTime_DATE_GET_SECOND(v);
        if (cell_start(b, letter, nletter, row, nrow, "\" s=\"2\" t=\"n\"><v>") < 0 ||
            put_serial(b, days, seconds, PyDateTime_DATE_GET_MICROSECOND(v)) < 0)
            return ERROR;
        return buf_put(b, "</v></c>", 8);
    }
    if (PyDate_CheckExact(v)) {
        int y = PyDateTime_GET_YEAR(v);
        if (y < 1900)
            return UNHANDLED;
        long days = ordinal(y, PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)) - EXCEL_EPOCH_ORDINAL;
        if (cell_start(b, letter, nletter, row, nrow, "\" s=\"3\" t=\"n\"><v>") < 0 || put_serial(b, days, 0, 0) < 0)
            return ERROR;
        return buf_put(b, "</v></c>", 8);
    }
    return UNHANDLED; /* floats (rounding is noted), Decimal, time, ...: Python */
}

PyDoc_STRVAR(xlsx_rows_doc,
             "xlsx_rows(columns, verbatim, letters, first) -> bytes | int\n\n"
             "The batch as worksheet rows ('<row r=\"N\">' cells '</row>', rows numbered from\n"
             "first; the cell references take the column letters given) as UTF-8, or the\n"
             "index of the first column holding a value this function leaves to Python.\n"
             "Columns flagged verbatim hold each row's finished cell ('' for none).");

static PyObject *xlsx_rows(PyObject *self, PyObject *args) {
    PyObject *columns, *verbatim, *letters_arg;
    Py_ssize_t first;
    if (!PyArg_ParseTuple(args, "OOOn:xlsx_rows", &columns, &verbatim, &letters_arg, &first))
        return NULL;
    Batch t;
    Buf b = {0};
    PyObject *result = NULL, *letters = NULL;
    if (batch_open(&t, columns, verbatim) < 0)
        goto done;
    if (first < 1 || first > PY_SSIZE_T_MAX - t.nrows) {
        PyErr_SetString(PyExc_ValueError, "first must be a row number (1 or more)");
        goto done;
    }
    letters = PySequence_Tuple(letters_arg);
    if (letters == NULL)
        goto done;
    if (PyTuple_GET_SIZE(letters) != t.ncols) {
        PyErr_SetString(PyExc_ValueError, "one column letter per column");
        goto done;
    }
    if (!letters_ok(letters))
        goto done;
    for (Py_ssize_t r = 0; r < t.nrows; r++) {
        char row[24];
        int nrow = row_start(&b, first + r, row);
        if (nrow < 0)
            goto done;
        for (Py_ssize_t c = 0; c < t.ncols; c++) {
            PyObject *v = t.items[c][r];
            int rc;
            if (t.verbatim[c]) {
                rc = put_verbatim(&b, v);
            } else {
                PyObject *letter = PyTuple_GET_ITEM(letters, c);
                rc = excel_cell(&b, v, PyUnicode_DATA(letter), PyUnicode_GET_LENGTH(letter), row, nrow);
            }
            if (rc == ERROR)
                goto done;
            if (rc == UNHANDLED) {
                result = PyLong_FromSsize_t(c);
                goto done;
            }
        }
        if (buf_put(&b, "</row>", 6) < 0)
            goto done;
    }
    result = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
done:
    Py_XDECREF(letters);
    buf_free(&b);
    batch_free(&t);
    return result;
}

/* ------------------------------------------------------------------ SQLite rows read here
 *
 * sqlite_csv and sqlite_inserts read a SELECT through the sqlite3 handle of the export's
 * own connection (the Python sqlite3.Connection SQLAlchemy holds, inside its read
 * transaction: the same snapshot and the same temporary key tables) and write the CSV
 * records or the SQL dump's INSERTs straight from SQLite's values, without a Python
 * object per value.  The SQLite functions are looked up
 * in the library the sqlite3 module itself uses (sqlite_bind); nothing is linked here.
 *
 * It handles only values whose text is certain -- NULL, integers, finite floats, valid
 * UTF-8 text, and for the columns SQLAlchemy converts on SQLite: datetimes and dates
 * stored as exact ISO text, booleans stored as integers -- and stops before the first row
 * holding anything else (or when SQLite reports an error), returning the rows written;
 * sqlite_inserts stops at the start of that row's batch (the statements end with each
 * batch, as the writer's do).  The caller reads the rest through the driver (OFFSET
 * rows) as before. */

#include <dlfcn.h>
#include <poll.h>

typedef struct le_sqlite3 le_sqlite3;
typedef struct le_sqlite3_stmt le_sqlite3_stmt;

#define LE_SQLITE_ROW 100
#define LE_SQLITE_DONE 101
#define LE_SQLITE_INTEGER 1
#define LE_SQLITE_FLOAT 2
#define LE_SQLITE_TEXT 3
#define LE_SQLITE_NULL 5
#define LE_SQLITE_TRANSIENT ((void (*)(void *)) - 1)

/* A function of a library already loaded (by the module whose objects it is used on), and
 * where its address goes. */
typedef struct {
    void **slot;
    const char *name;
} Symbol;

/* Every symbol looked up in the loaded library file path: 1; 0 when the file is not loaded
 * or a function is missing (the caller then keeps none of them). */
static int find_symbols(const char *path, const Symbol *symbols, size_t n) {
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((*symbols[i].slot = dlsym(h, symbols[i].name)) == NULL)
            return 0;
    return 1;
}

static struct {
    int bound;
    PyTypeObject *connection_type;
    int (*prepare_v2)(le_sqlite3 *, const char *, int, le_sqlite3_stmt **, const char **);
    int (*step)(le_sqlite3_stmt *);
    int (*finalize)(le_sqlite3_stmt *);
    int (*column_count)(le_sqlite3_stmt *);
    int (*column_type)(le_sqlite3_stmt *, int);
    long long (*column_int64)(le_sqlite3_stmt *, int);
    double (*column_double)(le_sqlite3_stmt *, int);
    const unsigned char *(*column_text)(le_sqlite3_stmt *, int);
    int (*column_bytes)(le_sqlite3_stmt *, int);
    int (*bind_int64)(le_sqlite3_stmt *, int, long long);
    int (*bind_double)(le_sqlite3_stmt *, int, double);
    int (*bind_text)(le_sqlite3_stmt *, int, const char *, int, void (*)(void *));
    int (*bind_null)(le_sqlite3_stmt *, int);
    int (*bind_parameter_count)(le_sqlite3_stmt *);
    const char *(*db_filename)(le_sqlite3 *, const char *);
    int (*get_autocommit)(le_sqlite3 *);
} lite;

/* CPython's sqlite3.Connection begins with the handle (Modules/_sqlite/connection.h, 3.7
 * to 3.14; speedups.py binds only there); reading_open checks the handle's own answers
 * (the main file, an open transaction) before it reads. */
typedef struct {
    PyObject_HEAD
    le_sqlite3 *db;
} le_connection;

PyDoc_STRVAR(sqlite_bind_doc,
             "sqlite_bind(library, connection_type) -> bool\n\n"
             "Look up the SQLite functions in the loaded library file (the sqlite3 module's\n"
             "extension, which links SQLite); False when one is missing.");

static PyObject *sqlite_bind(PyObject *self, PyObject *args) {
    const char *path;
    PyObject *type;
    if (!PyArg_ParseTuple(args, "sO!:sqlite_bind", &path, &PyType_Type, &type))
        return NULL;
    if (lite.bound)
        Py_RETURN_TRUE;
    const Symbol symbols[] = {
        {(void **)&lite.prepare_v2, "sqlite3_prepare_v2"},
        {(void **)&lite.step, "sqlite3_step"},
        {(void **)&lite.finalize, "sqlite3_finalize"},
        {(void **)&lite.column_count, "sqlite3_column_count"},
        {(void **)&lite.column_type, "sqlite3_column_type"},
        {(void **)&lite.column_int64, "sqlite3_column_int64"},
        {(void **)&lite.column_double, "sqlite3_column_double"},
        {(void **)&lite.column_text, "sqlite3_column_text"},
        {(void **)&lite.column_bytes, "sqlite3_column_bytes"},
        {(void **)&lite.bind_int64, "sqlite3_bind_int64"},
        {(void **)&lite.bind_double, "sqlite3_bind_double"},
        {(void **)&lite.bind_text, "sqlite3_bind_text"},
        {(void **)&lite.bind_null, "sqlite3_bind_null"},
        {(void **)&lite.bind_parameter_count, "sqlite3_bind_parameter_count"},
        {(void **)&lite.db_filename, "sqlite3_db_filename"},
        {(void **)&lite.get_autocommit, "sqlite3_get_autocommit"},
    };
    if (!find_symbols(path, symbols, sizeof(symbols) / sizeof(symbols[0])))
        Py_RETURN_FALSE;
    Py_INCREF(type);
    lite.connection_type = (PyTypeObject *)type;
    lite.bound = 1;
    Py_RETURN_TRUE;
}

/* What an ASCII byte is to a format's text (MARK_SPECIAL: it must be escaped or quoted;
 * MARK_BAD: XML cannot hold it), per format. */
enum { MARK_SPECIAL = 1, MARK_BAD = 2 };
static const unsigned char CSV_MARKS[128] = {['"'] = 1, [','] = 1, ['\r'] = 1, ['\n'] = 1};
static const unsigned char JSON_MARKS[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1};
static const unsigned char XML_MARKS[128] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    ['&'] = 1, ['<'] = 1, ['>'] = 1};

/* The character of UTF-8 (as Python's strict decoder takes it: no overlong forms, no
 * surrogates, nothing above U+10FFFF) that begins s[0..n), into *cp: its length in bytes,
 * or 0 when there is none there. */
static inline int utf8_char(const unsigned char *s, Py_ssize_t n, Py_UCS4 *cp) {
    unsigned char c = s[0];
    int len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        *cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        *cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && (*cp < 0x800 || (*cp >= 0xD800 && *cp <= 0xDFFF))) || (len == 4 && (*cp < 0x10000 || *cp > 0x10FFFF)))
        return 0;
    return len;
}

/* Whether s[0..n) is UTF-8 as Python's strict decoder takes it (``utf8_char``); *special:
 * the marks of its ASCII bytes, ORed, and nonchar when it holds U+FFFE or U+FFFF. */
static int utf8_valid(const unsigned char *s, Py_ssize_t n, const unsigned char *marks, int nonchar, int *special) {
    Py_ssize_t i = 0;
    int found = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            found |= marks[c];
            i++;
            continue;
        }
        Py_UCS4 cp;
        int len = utf8_char(s + i, n - i, &cp);
        if (len == 0)
            return 0;
        if (cp == 0xFFFE || cp == 0xFFFF)
            found |= nonchar;
        i += len;
    }
    *special = found;
    return 1;
}

static int digits_at(const unsigned char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int month_days(int y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : days[m - 1];
}

/* A valid "YYYY-MM-DD" (date.fromisoformat's plain form) at s. */
static int iso_date(const unsigned char *s, int *y, int *m, int *d) {
    if (s[4] != '-' || s[7] != '-' || !digits_at(s, 4, y) || !digits_at(s + 5, 2, m) || !digits_at(s + 8, 2, d))
        return 0;
    return *y >= 1 && *m >= 1 && *m <= 12 && *d >= 1 && *d <= month_days(*y, *m);
}

/* A datetime as "YYYY-MM-DD HH:MM:SS" ('T' also), or with a fraction of min_digits to six
 * digits (SQLAlchemy's storage format: 6; PostgreSQL's output drops trailing zeros: 1):
 * its fields in t[0..6] (year, month, day, hour, minute, second, microsecond) and the
 * fraction's digits; 0 when it is not one. */
static int iso_datetime(const unsigned char *s, int n, int min_digits, int *t, int *digits) {
    *digits = n > 19 ? n - 20 : 0;
    t[6] = 0;
    if ((n != 19 && (*digits < min_digits || *digits > 6)) || !iso_date(s, &t[0], &t[1], &t[2]) ||
        (s[10] != ' ' && s[10] != 'T') || s[13] != ':' || s[16] != ':' || !digits_at(s + 11, 2, &t[3]) ||
        !digits_at(s + 14, 2, &t[4]) || !digits_at(s + 17, 2, &t[5]) || t[3] > 23 || t[4] > 59 || t[5] > 59)
        return 0;
    if (*digits && (s[19] != '.' || !digits_at(s + 20, *digits, &t[6])))
        return 0;
    for (int k = *digits; k < 6; k++)
        t[6] *= 10;
    return 1;
}

/* Such a datetime written as isoformat() writes it (six fraction digits, none when zero);
 * 0 when it is not one. */
static int put_iso_datetime(Buf *b, const unsigned char *s, int n, int min_digits) {
    int t[7], digits;
    if (!iso_datetime(s, n, min_digits, t, &digits))
        return 0;
    if (buf_reserve(b, 26) < 0)
        return ERROR;
    memcpy(b->data + b->len, s, 19);
    b->data[b->len + 10] = 'T';
    b->len += 19;
    if (t[6]) {
        memcpy(b->data + b->len, s + 19, (size_t)digits + 1);
        memset(b->data + b->len + 1 + digits, '0', (size_t)(6 - digits));
        b->len += 7;
    }
    return 1;
}

enum { KIND_PLAIN = 0, KIND_DATETIME = 1, KIND_DATE = 2, KIND_BOOLEAN = 3 };

/* What every SQLite writer reads of column c before writing it, by the rules the Python
 * writers share: an integer in a plain or boolean column, a finite float in a plain one,
 * text in any column but a boolean one; anything else (a BLOB, a NaN, an integer in a
 * date column...) is left to Python. */
enum { CELL_NULL, CELL_INT, CELL_BOOL, CELL_FLOAT, CELL_TEXT, CELL_PYTHON, CELL_ERROR };

typedef struct {
    long long i;
    double v;
    const unsigned char *u; /* text: UTF-8 as stored (not yet checked), n bytes */
    int n;
} Cell;

static int sqlite_cell(le_sqlite3_stmt *st, int c, int kind, Cell *cell) {
    switch (lite.column_type(st, c)) {
    case LE_SQLITE_NULL:
        return CELL_NULL;
    case LE_SQLITE_INTEGER:
        if (kind != KIND_PLAIN && kind != KIND_BOOLEAN)
            return CELL_PYTHON;
        cell->i = lite.column_int64(st, c);
        return kind == KIND_BOOLEAN ? CELL_BOOL : CELL_INT;
    case LE_SQLITE_FLOAT:
        if (kind != KIND_PLAIN)
            return CELL_PYTHON;
        cell->v = lite.column_double(st, c);
        return isfinite(cell->v) ? CELL_FLOAT : CELL_PYTHON;
    case LE_SQLITE_TEXT:
        if (kind == KIND_BOOLEAN)
            return CELL_PYTHON;
        cell->u = lite.column_text(st, c);
        cell->n = lite.column_bytes(st, c);
        return cell->u == NULL ? CELL_ERROR : CELL_TEXT;
    default:
        return CELL_PYTHON;
    }
}

/* A date or datetime column's text as isoformat() writes the value it stands for: DONE,
 * ERROR, or UNHANDLED (not such a text; nothing written). */
static int put_iso_value(Buf *b, const unsigned char *u, int n, int kind) {
    int y, m, d;
    if (kind == KIND_DATETIME) {
        int rc = put_iso_datetime(b, u, n, 6);
        return rc == 1 ? DONE : rc == 0 ? UNHANDLED : ERROR;
    }
    return n == 10 && iso_date(u, &y, &m, &d) ? buf_put(b, (const char *)u, 10) : UNHANDLED;
}

static int put_bool(Buf *b, long long n) { return n ? buf_put(b, "true", 4) : buf_put(b, "false", 5); }

/* One value of column c as its CSV field: DONE, ERROR, or UNHANDLED (not certain here). */
static int csv_sqlite_value(Buf *b, le_sqlite3_stmt *st, int c, int kind) {
    Cell v;
    switch (sqlite_cell(st, c, kind, &v)) {
    case CELL_NULL:
        return DONE;
    case CELL_INT:
        return put_int64(b, v.i);
    case CELL_BOOL:
        return put_bool(b, v.i);
    case CELL_FLOAT:
        return put_double(b, v.v);
    case CELL_TEXT:
        break;
    case CELL_ERROR:
        return ERROR;
    default:
        return UNHANDLED;
    }
    if (kind == KIND_DATETIME || kind == KIND_DATE)
        return put_iso_value(b, v.u, v.n, kind);
    int special;
    if (!utf8_valid(v.u, v.n, CSV_MARKS, 0, &special))
        return UNHANDLED;
    return special ? csv_text(b, (const char *)v.u, v.n) : buf_put(b, (const char *)v.u, v.n);
}

/* Binds the statement's parameters (int, float, str or None); 0 when one is none of those. */
static int bind_params(le_sqlite3_stmt *st, PyObject *params) {
    Py_ssize_t n = PyTuple_GET_SIZE(params);
    if (n != lite.bind_parameter_count(st))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(params, i);
        int rc;
        if (v == Py_None) {
            rc = lite.bind_null(st, (int)i + 1);
        } else if (PyLong_Check(v)) {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (x == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return 0;
            }
            rc = lite.bind_int64(st, (int)i + 1, x);
        } else if (PyFloat_CheckExact(v)) {
            rc = lite.bind_double(st, (int)i + 1, PyFloat_AS_DOUBLE(v));
        } else if (PyUnicode_CheckExact(v)) {
            Py_ssize_t size;
            const char *u = PyUnicode_AsUTF8AndSize(v, &size);
            if (u == NULL || size > INT_MAX) {
                PyErr_Clear();
                return 0;
            }
            rc = lite.bind_text(st, (int)i + 1, u, (int)size, LE_SQLITE_TRANSIENT);
        } else {
            return 0;
        }
        if (rc != 0)
            return 0;
    }
    return 1;
}

/* Hands the buffer to write(bytes, rows) and empties it; -1 on a Python error. */
static int flush_to(Buf *b, PyObject *write, Py_ssize_t rows) {
    PyObject *chunk = PyBytes_FromStringAndSize(b->data ? b->data : "", b->len);
    if (chunk == NULL)
        return -1;
    PyObject *r = PyObject_CallFunction(write, "On", chunk, rows);
    Py_DECREF(chunk);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    b->len = 0;
    return PyErr_CheckSignals();
}

PyDoc_STRVAR(sqlite_csv_doc,
             "sqlite_csv(connection, filename, sql, params, kinds, write, chunk) -> (rows, finished) | None\n\n"
             "Run sql (params: a tuple of int, float, str or None) on the sqlite3.Connection's\n"
             "own handle, inside its open transaction, and write its rows as CSV records\n"
             "through write(bytes, rows so far), about chunk bytes a call.  kinds: one per\n"
             "column, 0 as read, 1 datetime text, 2 date text, 3 integer boolean.  Returns\n"
             "the rows written and whether they are all of them (False: stopped before a row\n"
             "with a value left to Python, or at an error SQLite reported); None when nothing\n"
             "was read (the functions are not bound, the handle is not on filename, no\n"
             "transaction is open, or the statement cannot be prepared as given).");

/* The statement prepared and bound on the connection's own handle, and the kinds of its
 * columns: 1; 0 when it cannot be read here (nothing is set); -1 on a Python error. */
typedef struct {
    le_sqlite3_stmt *st;
    int *kinds;
    Py_ssize_t ncols;
} Reading;

static void reading_close(Reading *r) {
    if (r->st != NULL)
        lite.finalize(r->st);
    PyMem_Free(r->kinds);
    memset(r, 0, sizeof(*r));
}

static int reading_open(Reading *r, PyObject *conn, const char *filename, const char *sql, PyObject *params,
                        PyObject *kinds_seq) {
    memset(r, 0, sizeof(*r));
    if (!lite.bound || !PyObject_TypeCheck(conn, lite.connection_type))
        return 0;
    le_sqlite3 *db = ((le_connection *)conn)->db;
    if (db == NULL)
        return 0;
    const char *main_file = lite.db_filename(db, "main");
    if (main_file == NULL || strcmp(main_file, filename) != 0 || lite.get_autocommit(db))
        return 0;
    PyObject *kinds = PySequence_Tuple(kinds_seq);
    if (kinds == NULL)
        return -1;
    r->ncols = PyTuple_GET_SIZE(kinds);
    r->kinds = PyMem_Calloc((size_t)(r->ncols ? r->ncols : 1), sizeof(int));
    if (r->kinds == NULL) {
        Py_DECREF(kinds);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t c = 0; c < r->ncols; c++) {
        r->kinds[c] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds, c));
        if (r->kinds[c] == -1 && PyErr_Occurred()) {
            Py_DECREF(kinds);
            reading_close(r);
            return -1;
        }
    }
    Py_DECREF(kinds);
    if (lite.prepare_v2(db, sql, -1, &r->st, NULL) != 0 || r->st == NULL || lite.column_count(r->st) != r->ncols ||
        r->ncols == 0 || !bind_params(r->st, params)) {
        reading_close(r);
        return 0;
    }
    return 1;
}

static PyObject *sqlite_csv(PyObject *self, PyObject *args) {
    PyObject *conn, *params, *kinds_seq, *write;
    const char *filename, *sql;
    Py_ssize_t chunk;
    if (!PyArg_ParseTuple(args, "OssO!OOn:sqlite_csv", &conn, &filename, &sql, &PyTuple_Type, &params, &kinds_seq,
                          &write, &chunk))
        return NULL;
    Reading rd;
    int opened = reading_open(&rd, conn, filename, sql, params, kinds_seq);
    if (opened <= 0) {
        if (opened < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    le_sqlite3_stmt *st = rd.st;
    Py_ssize_t ncols = rd.ncols;
    PyObject *result = NULL;
    Buf b = {0};
    Py_ssize_t rows = 0;
    int finished = 0;
    for (;;) {
        int rc = lite.step(st);
        if (rc == LE_SQLITE_DONE) {
            finished = 1;
            break;
        }
        if (rc != LE_SQLITE_ROW)
            break; /* the driver reads again from here, and reports the error its own way */
        Py_ssize_t start = b.len;
        int unhandled = 0;
        for (Py_ssize_t c = 0; c < ncols && !unhandled; c++) {
            if (c && buf_char(&b, ',') < 0)
                goto done;
            Py_ssize_t field = b.len;
            int vr = csv_sqlite_value(&b, st, (int)c, rd.kinds[c]);
            if (vr == ERROR)
                goto done;
            unhandled = vr == UNHANDLED;
            /* csv.writer quotes a record of one empty field (it would be a blank line) */
            if (!unhandled && ncols == 1 && b.len == field && buf_put(&b, "\"\"", 2) < 0)
                goto done;
        }
        if (unhandled) {
            b.len = start;
            break;
        }
        if (buf_put(&b, "\r\n", 2) < 0)
            goto done;
        rows++;
        if (b.len >= chunk && flush_to(&b, write, rows) < 0)
            goto done;
    }
    if (b.len && flush_to(&b, write, rows) < 0)
        goto done;
    result = Py_BuildValue("(nO)", rows, finished ? Py_True : Py_False);
done:
    reading_close(&rd);
    buf_free(&b);
    return result;
}

/* A set of 64-bit integers (open addressing; 0 is kept apart), for the references of the
 * rows sqlite_inserts writes: the keys known to be written, or the ones seen. */
typedef struct {
    long long *slots;
    Py_ssize_t cap, used;
    int has_zero;
} IntSet;

static void intset_free(IntSet *s) {
    PyMem_Free(s->slots);
    memset(s, 0, sizeof(*s));
}

static inline size_t int_hash(long long v) {
    unsigned long long x = (unsigned long long)v;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static int intset_has(const IntSet *s, long long v) {
    if (v == 0)
        return s->has_zero;
    if (s->cap == 0)
        return 0;
    for (size_t i = int_hash(v) & (size_t)(s->cap - 1);; i = (i + 1) & (size_t)(s->cap - 1)) {
        if (s->slots[i] == v)
            return 1;
        if (s->slots[i] == 0)
            return 0;
    }
}

static int intset_add(IntSet *s, long long v) {
    if (v == 0) {
        s->has_zero = 1;
        return 0;
    }
    if ((s->used + 1) * 2 > s->cap) {
        IntSet grown = {PyMem_Calloc((size_t)(s->cap ? s->cap * 2 : 64), sizeof(long long)), s->cap ? s->cap * 2 : 64,
                        0, s->has_zero};
        if (grown.slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < s->cap; i++)
            if (s->slots[i] != 0)
                intset_add(&grown, s->slots[i]);
        PyMem_Free(s->slots);
        *s = grown;
    }
    size_t i = int_hash(v) & (size_t)(s->cap - 1);
    while (s->slots[i] != 0 && s->slots[i] != v)
        i = (i + 1) & (size_t)(s->cap - 1);
    if (s->slots[i] == 0) {
        s->slots[i] = v;
        s->used++;
    }
    return 0;
}

/* The members of a Python set that are 1-tuples of an exact int within 64 bits. */
static int intset_from(IntSet *s, PyObject *known) {
    PyObject *it = PyObject_GetIter(known);
    if (it == NULL)
        return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 1 && PyLong_CheckExact(PyTuple_GET_ITEM(item, 0))) {
            int overflow = 0;
            long long v = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(item, 0), &overflow);
            if (!overflow && !(v == -1 && PyErr_Occurred()) && intset_add(s, v) < 0) {
                Py_DECREF(item);
                Py_DECREF(it);
                return -1;
            }
            PyErr_Clear();
        }
        Py_DECREF(item);
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* Adds (v,) to the Python set for every v of s. */
static int intset_into(const IntSet *s, PyObject *seen) {
    for (Py_ssize_t i = -1; i < s->cap; i++) {
        long long v;
        if (i < 0) {
            if (!s->has_zero)
                continue;
            v = 0;
        } else if ((v = s->slots[i]) == 0) {
            continue;
        }
        PyObject *t = Py_BuildValue("(L)", v);
        if (t == NULL || PySet_Add(seen, t) < 0) {
            Py_XDECREF(t);
            return -1;
        }
        Py_DECREF(t);
    }
    return 0;
}

/* One value of column c as an SQL literal for dialect (as sql_value writes the value the
 * driver and SQLAlchemy give): DONE, ERROR or UNHANDLED. */
static int sql_sqlite_value(Buf *b, le_sqlite3_stmt *st, int c, int kind, int dialect) {
    int type = lite.column_type(st, c);
    if (type == LE_SQLITE_NULL)
        return buf_put(b, "NULL", 4);
    if (kind == KIND_BOOLEAN)
        return UNHANDLED;
    if (type == LE_SQLITE_INTEGER && kind == KIND_PLAIN)
        return put_int64(b, lite.column_int64(st, c));
    if (type == LE_SQLITE_FLOAT && kind == KIND_PLAIN) {
        double v = lite.column_double(st, c);
        return isfinite(v) ? put_double(b, v) : UNHANDLED;
    }
    if (type != LE_SQLITE_TEXT)
        return UNHANDLED;
    const unsigned char *u = lite.column_text(st, c);
    int n = lite.column_bytes(st, c);
    if (u == NULL)
        return ERROR;
    if (kind == KIND_DATETIME) {
        Py_ssize_t start = b->len;
        if (buf_char(b, '\'') < 0)
            return ERROR;
        int rc = put_iso_datetime(b, u, n, 6); /* "YYYY-MM-DDTHH:MM:SS[.ffffff]" */
        if (rc != 1) {
            b->len = start;
            return rc == 0 ? UNHANDLED : ERROR;
        }
        b->data[start + 11] = ' ';
        if (dialect == SQLITE && b->len - start == 20 && buf_put(b, ".000000", 7) < 0) /* microseconds always */
            return ERROR;
        return buf_char(b, '\'');
    }
    if (kind == KIND_DATE) {
        int y, m, d;
        if (n != 10 || !iso_date(u, &y, &m, &d))
            return UNHANDLED;
        return buf_char(b, '\'') < 0 || buf_put(b, (const char *)u, 10) < 0 || buf_char(b, '\'') < 0 ? ERROR : DONE;
    }
    int special;
    if (!utf8_valid(u, n, CSV_MARKS, 0, &special))
        return UNHANDLED;
    return sql_string(b, (const char *)u, n, dialect);
}

typedef struct {
    int column;
    IntSet known; /* checked: a reference not in it stops the read (when check) */
    IntSet seen;  /* collected (when collect) */
    PyObject *into;
    int check;
} Ref;

/* Whether row's references pass: NULL, or an integer known (when checked; noted when
 * collected); 0 for a reference that is not, -1 on a Python error. */
static int refs_pass(Ref *refs, Py_ssize_t nrefs, le_sqlite3_stmt *st) {
    for (Py_ssize_t k = 0; k < nrefs; k++) {
        int type = lite.column_type(st, refs[k].column);
        if (type == LE_SQLITE_NULL)
            continue;
        if (type != LE_SQLITE_INTEGER)
            return 0;
        long long v = lite.column_int64(st, refs[k].column);
        if (refs[k].check && !intset_has(&refs[k].known, v))
            return 0;
        if (refs[k].into != NULL && intset_add(&refs[k].seen, v) < 0)
            return -1;
    }
    return 1;
}

static int refs_open(Ref **out, Py_ssize_t *nout, PyObject *spec, Py_ssize_t ncols) {
    PyObject *seq = PySequence_Tuple(spec);
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    Ref *refs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Ref));
    *out = refs;
    *nout = 0;
    if (refs == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *known, *into;
        int column;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(seq, k), "iOO", &column, &known, &into) || column < 0 ||
            column >= ncols) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a reference's column is not selected");
            Py_DECREF(seq);
            return -1;
        }
        *nout = k + 1;
        refs[k].column = column;
        refs[k].check = known != Py_None;
        if (refs[k].check && intset_from(&refs[k].known, known) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        if (into != Py_None) {
            if (!PySet_Check(into)) {
                PyErr_SetString(PyExc_TypeError, "references are collected into a set");
                Py_DECREF(seq);
                return -1;
            }
            refs[k].into = into;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static void refs_close(Ref *refs, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        intset_free(&refs[k].known);
        intset_free(&refs[k].seen);
    }
    PyMem_Free(refs);
}

PyDoc_STRVAR(sqlite_inserts_doc,
             "sqlite_inserts(connection, filename, sql, params, kinds, dialect, head, max_rows, max_chars,\n"
             "               batch_rows, refs, write) -> (rows, finished) | None\n\n"
             "As sqlite_csv, the rows as the INSERT statements sql_inserts writes for batches of\n"
             "batch_rows rows (a statement also ends with each batch).  refs: (column, known,\n"
             "into) per reference: a row whose value there is not NULL and not (value,) in the\n"
             "set known (None: not checked) is left to Python, and the values are added to the\n"
             "set into as (value,) (None: not collected).  A batch is written whole or not at\n"
             "all: rows is a multiple of batch_rows unless finished.");

static PyObject *sqlite_inserts(PyObject *self, PyObject *args) {
    PyObject *conn, *params, *kinds_seq, *refs_spec, *write;
    const char *filename, *sql, *head;
    Py_ssize_t head_len, max_rows, max_chars, batch_rows;
    int dialect;
    if (!PyArg_ParseTuple(args, "OssO!Ois#nnnOO:sqlite_inserts", &conn, &filename, &sql, &PyTuple_Type, &params,
                          &kinds_seq, &dialect, &head, &head_len, &max_rows, &max_chars, &batch_rows, &refs_spec,
                          &write))
        return NULL;
    if (dialect < SQLITE || dialect > MYSQL || batch_rows < 1) {
        PyErr_SetString(PyExc_ValueError, "dialect must be 0, 1 or 2, and a batch at least one row");
        return NULL;
    }
    Reading rd;
    int opened = reading_open(&rd, conn, filename, sql, params, kinds_seq);
    if (opened <= 0) {
        if (opened < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    Ref *refs = NULL;
    Py_ssize_t nrefs = 0;
    PyObject *result = NULL;
    Buf b = {0};
    Py_ssize_t rows = 0, in_batch = 0, in_statement = 0, size = 0, batch_start = 0;
    int finished = 0;
    if (refs_open(&refs, &nrefs, refs_spec, rd.ncols) < 0)
        goto done;
    for (;;) {
        if (in_batch == 0)
            batch_start = b.len;
        int rc = lite.step(rd.st);
        if (rc == LE_SQLITE_DONE) {
            finished = 1;
            break;
        }
        if (rc != LE_SQLITE_ROW)
            break; /* the driver reads this batch again, and reports the error its own way */
        int pass = refs_pass(refs, nrefs, rd.st);
        if (pass < 0)
            goto done;
        int unhandled = !pass;
        if (!unhandled && buf_put(&b, in_statement ? ",\n" : head, in_statement ? 2 : head_len) < 0)
            goto done;
        Py_ssize_t start = b.len;
        if (!unhandled && buf_char(&b, '(') < 0)
            goto done;
        for (Py_ssize_t c = 0; c < rd.ncols && !unhandled; c++) {
            if (c && buf_put(&b, ", ", 2) < 0)
                goto done;
            int vr = sql_sqlite_value(&b, rd.st, (int)c, rd.kinds[c], dialect);
            if (vr == ERROR)
                goto done;
            unhandled = vr == UNHANDLED;
        }
        if (unhandled)
            break;
        if (buf_char(&b, ')') < 0)
            goto done;
        in_statement++;
        in_batch++;
        size += code_points(b.data + start, b.len - start);
        if (in_statement >= max_rows || size >= max_chars || in_batch == batch_rows) {
            if (buf_put(&b, ";\n", 2) < 0)
                goto done;
            in_statement = size = 0;
        }
        if (in_batch == batch_rows) {
            rows += in_batch;
            in_batch = 0;
            if (b.len >= (1 << 20) && flush_to(&b, write, rows) < 0)
                goto done;
        }
    }
    if (finished) {
        if (in_statement && buf_put(&b, ";\n", 2) < 0)
            goto done;
        rows += in_batch;
    } else {
        b.len = batch_start; /* the batch is read again, in Python */
    }
    if (b.len && flush_to(&b, write, rows) < 0)
        goto done;
    for (Py_ssize_t k = 0; k < nrefs; k++)
        if (refs[k].into != NULL && intset_into(&refs[k].seen, refs[k].into) < 0)
            goto done;
    result = Py_BuildValue("(nO)", rows, finished ? Py_True : Py_False);
done:
    refs_close(refs, nrefs);
    reading_close(&rd);
    buf_free(&b);
    return result;
}

/* ------------------------------------------------------------------ SQLite rows as JSON and XML
 *
 * sqlite_rows opens a statement on the connection's own handle (as sqlite_csv does) and
 * keeps it in a capsule; sqlite_texts reads it a batch at a time, each row made into one
 * text per template: the JSON writer's object ({"name":value,...}, as orjson writes the
 * values Sanitiser.json leaves unchanged) or the XML writer's column elements (the text
 * as Sanitiser.xml gives it, & < > and CR escaped).  The nested documents merge several
 * tables' rows with the people, so each statement stays open between calls; sqlite_close
 * (or the capsule's end) finalizes it.  A row holding what is not certain here (a float
 * in JSON, text XML cannot hold, a BLOB, text that is not UTF-8, ...) stops the reading
 * before it, as sqlite_csv stops: the caller reads the rest through the driver. */

enum { TEXT_JSON = 0, TEXT_XML = 1 };
static const char ROWS_CAPSULE[] = "learnexit._speedups.rows";

/* A JSON string's inside, as orjson escapes it: " \ and the control characters. */
static int json_string(Buf *b, const unsigned char *u, Py_ssize_t size) {
    static const char hex[] = "0123456789abcdef";
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        Py_ssize_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\t': esc[1] = 't'; break;
        case '\n': esc[1] = 'n'; break;
        case '\f': esc[1] = 'f'; break;
        case '\r': esc[1] = 'r'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        if (buf_put(b, (const char *)u + start, i - start) < 0 || buf_put(b, esc, n) < 0)
            return ERROR;
        start = i + 1;
    }
    return buf_put(b, (const char *)u + start, size - start);
}

/* One value (not NULL) of column c as the template's mode writes it: DONE, ERROR or
 * UNHANDLED. */
static int text_sqlite_value(Buf *b, le_sqlite3_stmt *st, int c, int kind, int mode) {
    Cell v;
    switch (sqlite_cell(st, c, kind, &v)) {
    case CELL_INT:
        return put_int64(b, v.i);
    case CELL_BOOL:
        return put_bool(b, v.i);
    case CELL_FLOAT: /* (orjson's floats are not Python's repr: JSON leaves them to Python) */
        return mode == TEXT_XML ? put_double(b, v.v) : UNHANDLED;
    case CELL_TEXT:
        break;
    case CELL_ERROR:
        return ERROR;
    default: /* (NULL: the template's own text, written by the caller) */
        return UNHANDLED;
    }
    int quoted = mode == TEXT_JSON;
    if (kind == KIND_DATETIME || kind == KIND_DATE) {
        Py_ssize_t start = b->len;
        int rc = quoted && buf_char(b, '"') < 0 ? ERROR : put_iso_value(b, v.u, v.n, kind);
        if (rc != DONE) {
            b->len = start;
            return rc;
        }
        return quoted ? buf_char(b, '"') : DONE;
    }
    int special;
    if (!utf8_valid(v.u, v.n, quoted ? JSON_MARKS : XML_MARKS, quoted ? 0 : MARK_BAD, &special) ||
        (special & MARK_BAD))
        return UNHANDLED;
    if (!quoted)
        return special ? xml_text(b, (const char *)v.u, v.n) : buf_put(b, (const char *)v.u, v.n);
    if (buf_char(b, '"') < 0 || (special ? json_string(b, v.u, v.n) : buf_put(b, (const char *)v.u, v.n)) < 0)
        return ERROR;
    return buf_char(b, '"');
}

/* A template's pieces, borrowed from its tuple: mode, head, tail, and per column its
 * prefix, suffix and the whole text of a NULL. */
typedef struct {
    const char *data;
    Py_ssize_t len;
} Piece;

typedef struct {
    int mode;
    Piece head, tail;
    Piece *columns; /* ncols * 3 */
} Template;

static int piece(PyObject *v, Piece *p) {
    if (!PyBytes_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "a template's pieces are bytes");
        return -1;
    }
    p->data = PyBytes_AS_STRING(v);
    p->len = PyBytes_GET_SIZE(v);
    return 0;
}

/* templates (a tuple of (mode, head, tail, ((prefix, suffix, null), ...))) read into
 * t[0..n); -1 with an error set when one is not so. */
static int templates_open(PyObject *templates, Template *t, Py_ssize_t n, Py_ssize_t ncols) {
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *spec = PyTuple_GET_ITEM(templates, k), *cols;
        PyObject *head, *tail;
        if (!PyArg_ParseTuple(spec, "iSSO!:template", &t[k].mode, &head, &tail, &PyTuple_Type, &cols))
            return -1;
        if ((t[k].mode != TEXT_JSON && t[k].mode != TEXT_XML) || PyTuple_GET_SIZE(cols) != ncols) {
            PyErr_SetString(PyExc_ValueError, "a template has mode 0 or 1 and a triple per column");
            return -1;
        }
        if (piece(head, &t[k].head) < 0 || piece(tail, &t[k].tail) < 0)
            return -1;
        t[k].columns = PyMem_Calloc((size_t)(3 * ncols + 1), sizeof(Piece));
        if (t[k].columns == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t c = 0; c < ncols; c++) {
            PyObject *triple = PyTuple_GET_ITEM(cols, c);
            if (!PyTuple_Check(triple) || PyTuple_GET_SIZE(triple) != 3) {
                PyErr_SetString(PyExc_ValueError, "a template's column is (prefix, suffix, null)");
                return -1;
            }
            for (int j = 0; j < 3; j++)
                if (piece(PyTuple_GET_ITEM(triple, j), &t[k].columns[3 * c + j]) < 0)
                    return -1;
        }
    }
    return 0;
}

/* The current row as template t's text in b (emptied first): DONE, ERROR or UNHANDLED. */
static int template_row(Buf *b, const Template *t, le_sqlite3_stmt *st, const int *kinds, Py_ssize_t ncols) {
    b->len = 0;
    if (buf_put(b, t->head.data, t->head.len) < 0)
        return ERROR;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        const Piece *p = t->columns + 3 * c;
        if (lite.column_type(st, (int)c) == LE_SQLITE_NULL) {
            if (buf_put(b, p[2].data, p[2].len) < 0)
                return ERROR;
            continue;
        }
        if (buf_put(b, p[0].data, p[0].len) < 0)
            return ERROR;
        int vr = text_sqlite_value(b, st, (int)c, kinds[c], t->mode);
        if (vr != DONE)
            return vr;
        if (buf_put(b, p[1].data, p[1].len) < 0)
            return ERROR;
    }
    return buf_put(b, t->tail.data, t->tail.len);
}

static void rows_destroy(PyObject *capsule) {
    Reading *rd = PyCapsule_GetPointer(capsule, ROWS_CAPSULE);
    if (rd != NULL) {
        reading_close(rd);
        PyMem_Free(rd);
    }
}

/* The statement of a sqlite_rows capsule, still open; NULL with an error set. */
static Reading *open_rows(PyObject *capsule) {
    Reading *rd = PyCapsule_GetPointer(capsule, ROWS_CAPSULE);
    if (rd != NULL && rd->st == NULL) {
        PyErr_SetString(PyExc_ValueError, "the rows are closed");
        return NULL;
    }
    return rd;
}

/* The next row of the statement: 1; 0 with *state 1 at its end, 2 at an error SQLite
 * reported (the driver reads again from there and reports it its own way). */
static int next_row(Reading *rd, int *state) {
    int rc = lite.step(rd->st);
    if (rc == LE_SQLITE_ROW)
        return 1;
    *state = rc == LE_SQLITE_DONE ? 1 : 2;
    return 0;
}

PyDoc_STRVAR(sqlite_rows_doc,
             "sqlite_rows(connection, filename, sql, params, kinds) -> capsule | None\n\n"
             "The statement prepared and bound as sqlite_csv would read it, for sqlite_texts;\n"
             "None when it cannot be read here (as sqlite_csv).");

static PyObject *sqlite_rows(PyObject *self, PyObject *args) {
    PyObject *conn, *params, *kinds_seq;
    const char *filename, *sql;
    if (!PyArg_ParseTuple(args, "OssO!O:sqlite_rows", &conn, &filename, &sql, &PyTuple_Type, &params, &kinds_seq))
        return NULL;
    Reading *rd = PyMem_Calloc(1, sizeof(Reading));
    if (rd == NULL)
        return PyErr_NoMemory();
    int opened = reading_open(rd, conn, filename, sql, params, kinds_seq);
    if (opened <= 0) {
        PyMem_Free(rd);
        if (opened < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    PyObject *capsule = PyCapsule_New(rd, ROWS_CAPSULE, rows_destroy);
    if (capsule == NULL) {
        reading_close(rd);
        PyMem_Free(rd);
    }
    return capsule;
}

PyDoc_STRVAR(sqlite_texts_doc,
             "sqlite_texts(rows, templates, key, max_rows) -> (keys, texts, state)\n\n"
             "Up to max_rows more rows of sqlite_rows' statement: keys, the integers of\n"
             "column key (an empty list when key is -1); texts, per template (mode 0 JSON,\n"
             "1 XML; head, tail, and per column (prefix, suffix, the text of a NULL)) the\n"
             "rows' texts as bytes.  state: 0 more may follow, 1 every row is read, 2\n"
             "stopped before a row left to the driver (or at an error SQLite reported).");

static PyObject *sqlite_texts(PyObject *self, PyObject *args) {
    PyObject *capsule, *templates;
    Py_ssize_t key, max_rows;
    if (!PyArg_ParseTuple(args, "OO!nn:sqlite_texts", &capsule, &PyTuple_Type, &templates, &key, &max_rows))
        return NULL;
    Reading *rd = open_rows(capsule);
    if (rd == NULL)
        return NULL;
    if (key < -1 || key >= rd->ncols || (key >= 0 && rd->kinds[key] != KIND_PLAIN)) {
        PyErr_SetString(PyExc_ValueError, "key is -1 or a column read as stored");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(templates);
    Template *t = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Template));
    PyObject *keys = PyList_New(0), *texts = PyList_New(n), *result = NULL;
    Buf b = {0};
    int state = 0;
    if (t == NULL || keys == NULL || texts == NULL) {
        if (t == NULL)
            PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *list = PyList_New(0);
        if (list == NULL)
            goto done;
        PyList_SET_ITEM(texts, k, list);
    }
    if (templates_open(templates, t, n, rd->ncols) < 0)
        goto done;
    for (Py_ssize_t rows = 0; rows < max_rows && next_row(rd, &state); rows++) {
        if (key >= 0 && lite.column_type(rd->st, (int)key) != LE_SQLITE_INTEGER) {
            state = 2;
            break;
        }
        /* every text of the row first: a value left to the driver stops before the row */
        Py_ssize_t k;
        for (k = 0; k < n; k++) {
            int vr = template_row(&b, &t[k], rd->st, rd->kinds, rd->ncols);
            if (vr == ERROR)
                goto done;
            if (vr == UNHANDLED)
                break;
            PyObject *text = PyBytes_FromStringAndSize(b.data, b.len);
            if (text == NULL)
                goto done;
            int added = PyList_Append(PyList_GET_ITEM(texts, k), text);
            Py_DECREF(text);
            if (added < 0)
                goto done;
        }
        if (k < n) {
            for (Py_ssize_t j = 0; j < k; j++) { /* (the texts made of the row: taken back) */
                PyObject *list = PyList_GET_ITEM(texts, j);
                if (PyList_SetSlice(list, PyList_GET_SIZE(list) - 1, PyList_GET_SIZE(list), NULL) < 0)
                    goto done;
            }
            state = 2;
            break;
        }
        if (key >= 0) {
            PyObject *v = PyLong_FromLongLong(lite.column_int64(rd->st, (int)key));
            if (v == NULL || PyList_Append(keys, v) < 0) {
                Py_XDECREF(v);
                goto done;
            }
            Py_DECREF(v);
        }
    }
    if (PyErr_CheckSignals() < 0)
        goto done;
    result = Py_BuildValue("(OOi)", keys, texts, state);
done:
    if (t != NULL)
        for (Py_ssize_t k = 0; k < n; k++)
            PyMem_Free(t[k].columns);
    PyMem_Free(t);
    Py_XDECREF(keys);
    Py_XDECREF(texts);
    buf_free(&b);
    return result;
}

PyDoc_STRVAR(sqlite_close_doc, "sqlite_close(rows) -> None\n\nFinalize sqlite_rows' statement (again: nothing).");

static PyObject *sqlite_close(PyObject *self, PyObject *capsule) {
    Reading *rd = PyCapsule_GetPointer(capsule, ROWS_CAPSULE);
    if (rd == NULL)
        return NULL;
    reading_close(rd);
    Py_RETURN_NONE;
}

/* One value (not NULL) of column c as xlsx_rows' excel_cell writes what the driver and
 * SQLAlchemy give for it: DONE (an empty text writes no cell), ERROR or UNHANDLED. */
static int excel_sqlite_cell(Buf *b, le_sqlite3_stmt *st, int c, int kind, const char *letter, Py_ssize_t nletter,
                             const char *row, int nrow) {
    Cell v;
    switch (sqlite_cell(st, c, kind, &v)) {
    case CELL_BOOL:
        if (cell_start(b, letter, nletter, row, nrow, "\" t=\"b\"><v>") < 0)
            return ERROR;
        return buf_put(b, v.i ? "1</v></c>" : "0</v></c>", 9);
    case CELL_INT:
        if (v.i <= -EXCEL_INT_LIMIT || v.i >= EXCEL_INT_LIMIT)
            return UNHANDLED;
        if (cell_start(b, letter, nletter, row, nrow, "\" t=\"n\"><v>") < 0 || put_int64(b, v.i) < 0)
            return ERROR;
        return buf_put(b, "</v></c>", 8);
    case CELL_TEXT:
        break;
    case CELL_ERROR:
        return ERROR;
    default: /* (floats: Python notes their rounding; NULL: the caller writes no cell) */
        return UNHANDLED;
    }
    const unsigned char *u = v.u;
    int n = v.n;
    if (kind == KIND_DATETIME || kind == KIND_DATE) {
        int t[7] = {0}, digits;
        if (kind == KIND_DATETIME ? !iso_datetime(u, n, 6, t, &digits) : (n != 10 || !iso_date(u, &t[0], &t[1], &t[2])))
            return UNHANDLED;
        if (t[0] < 1900)
            return UNHANDLED;
        long days = ordinal(t[0], t[1], t[2]) - EXCEL_EPOCH_ORDINAL;
        const char *attrs = kind == KIND_DATETIME ? "\" s=\"2\" t=\"n\"><v>" : "\" s=\"3\" t=\"n\"><v>";
        if (cell_start(b, letter, nletter, row, nrow, attrs) < 0 ||
            put_serial(b, days, t[3] * 3600L + t[4] * 60L + t[5], t[6]) < 0)
            return ERROR;
        return buf_put(b, "</v></c>", 8);
    }
    if (n == 0)
        return DONE;
    int special;
    if (!utf8_valid(u, n, XML_MARKS, MARK_BAD, &special) || (special & MARK_BAD))
        return UNHANDLED;
    /* excel_text_ok: at most EXCEL_TEXT_MAX characters; white space (str.strip's) at an end */
    Py_ssize_t chars = 0;
    for (int i = 0; i < n; i++)
        chars += (u[i] & 0xC0) != 0x80;
    if (chars > EXCEL_TEXT_MAX)
        return UNHANDLED;
    int last = n - 1;
    while (last > 0 && (u[last] & 0xC0) == 0x80)
        last--;
    Py_UCS4 first_char, last_char; /* (valid UTF-8: checked above) */
    utf8_char(u, n, &first_char);
    utf8_char(u + last, n - last, &last_char);
    int space = Py_UNICODE_ISSPACE(first_char) || Py_UNICODE_ISSPACE(last_char);
    if (cell_start(b, letter, nletter, row, nrow,
                   space ? "\" t=\"inlineStr\"><is><t xml:space=\"preserve\">" : "\" t=\"inlineStr\"><is><t>") < 0 ||
        (special ? xml_text(b, (const char *)u, n) : buf_put(b, (const char *)u, n)) < 0)
        return ERROR;
    return buf_put(b, "</t></is></c>", 13);
}

PyDoc_STRVAR(sqlite_cells_doc,
             "sqlite_cells(rows, letters, first, max_rows) -> (bytes, rows, state)\n\n"
             "Up to max_rows more rows of sqlite_rows' statement as worksheet rows, as xlsx_rows\n"
             "writes them (numbered from first; one cell reference letter per column written:\n"
             "the columns after them are not), as UTF-8; the rows written, and state as\n"
             "sqlite_texts says (2: stopped before a row with a value left to Python).");

static PyObject *sqlite_cells(PyObject *self, PyObject *args) {
    PyObject *capsule, *letters;
    Py_ssize_t first, max_rows;
    if (!PyArg_ParseTuple(args, "OO!nn:sqlite_cells", &capsule, &PyTuple_Type, &letters, &first, &max_rows))
        return NULL;
    Reading *rd = open_rows(capsule);
    if (rd == NULL)
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(letters);
    if (ncols > rd->ncols || first < 1 || max_rows < 0 || first > PY_SSIZE_T_MAX - max_rows) {
        PyErr_SetString(PyExc_ValueError, "a letter per column written (at most the statement's), rows from 1");
        return NULL;
    }
    if (!letters_ok(letters))
        return NULL;
    Buf b = {0};
    PyObject *result = NULL;
    Py_ssize_t rows = 0;
    int state = 0;
    while (rows < max_rows && next_row(rd, &state)) {
        Py_ssize_t start = b.len;
        char row[24];
        int nrow = row_start(&b, first + rows, row);
        if (nrow < 0)
            goto done;
        int unhandled = 0;
        for (Py_ssize_t c = 0; c < ncols && !unhandled; c++) {
            if (lite.column_type(rd->st, (int)c) == LE_SQLITE_NULL)
                continue;
            PyObject *letter = PyTuple_GET_ITEM(letters, c);
            int vr = excel_sqlite_cell(&b, rd->st, (int)c, rd->kinds[c], PyUnicode_DATA(letter),
                                       PyUnicode_GET_LENGTH(letter), row, nrow);
            if (vr == ERROR)
                goto done;
            unhandled = vr == UNHANDLED;
        }
        if (unhandled) {
            b.len = start;
            state = 2;
            break;
        }
        if (buf_put(&b, "</row>", 6) < 0)
            goto done;
        rows++;
    }
    if (PyErr_CheckSignals() < 0)
        goto done;
    result = Py_BuildValue("(y#ni)", b.data ? b.data : "", b.len, rows, state);
done:
    buf_free(&b);
    return result;
}

/* ------------------------------------------------------------------ PostgreSQL's COPY */

/* libpq, as the psycopg driver loaded it (speedups.pg_library finds the one file); the
 * connection is psycopg's own PGconn, used only while the driver waits for this call. */
typedef struct le_pgconn le_pgconn;
typedef struct le_pgresult le_pgresult;
typedef struct le_pgcancel le_pgcancel;

#define LE_PGRES_COMMAND_OK 1
#define LE_PGRES_COPY_OUT 3
#define LE_CONNECTION_OK 0
#define LE_PQTRANS_INTRANS 2

static struct {
    int bound;
    le_pgresult *(*exec)(le_pgconn *, const char *);
    int (*result_status)(const le_pgresult *);
    char *(*result_error)(const le_pgresult *);
    void (*clear)(le_pgresult *);
    le_pgresult *(*get_result)(le_pgconn *);
    int (*get_copy_data)(le_pgconn *, char **, int);
    void (*freemem)(void *);
    int (*consume_input)(le_pgconn *);
    int (*socket)(const le_pgconn *);
    int (*status)(const le_pgconn *);
    int (*transaction_status)(const le_pgconn *);
    int (*is_nonblocking)(const le_pgconn *);
    int (*set_nonblocking)(le_pgconn *, int);
    le_pgcancel *(*get_cancel)(le_pgconn *);
    int (*cancel)(le_pgcancel *, char *, int);
    void (*free_cancel)(le_pgcancel *);
    char *(*error_message)(const le_pgconn *);
} pq;

PyDoc_STRVAR(pg_bind_doc, "pg_bind(library) -> bool\n\n"
                          "Look up libpq's functions in the loaded library file (the one the psycopg driver\n"
                          "uses); False when one is missing.");

static PyObject *pg_bind(PyObject *self, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s:pg_bind", &path))
        return NULL;
    if (pq.bound)
        Py_RETURN_TRUE;
    const Symbol symbols[] = {
        {(void **)&pq.exec, "PQexec"},
        {(void **)&pq.result_status, "PQresultStatus"},
        {(void **)&pq.result_error, "PQresultErrorMessage"},
        {(void **)&pq.clear, "PQclear"},
        {(void **)&pq.get_result, "PQgetResult"},
        {(void **)&pq.get_copy_data, "PQgetCopyData"},
        {(void **)&pq.freemem, "PQfreemem"},
        {(void **)&pq.consume_input, "PQconsumeInput"},
        {(void **)&pq.socket, "PQsocket"},
        {(void **)&pq.status, "PQstatus"},
        {(void **)&pq.transaction_status, "PQtransactionStatus"},
        {(void **)&pq.is_nonblocking, "PQisnonblocking"},
        {(void **)&pq.set_nonblocking, "PQsetnonblocking"},
        {(void **)&pq.get_cancel, "PQgetCancel"},
        {(void **)&pq.cancel, "PQcancel"},
        {(void **)&pq.free_cancel, "PQfreeCancel"},
        {(void **)&pq.error_message, "PQerrorMessage"},
    };
    if (!find_symbols(path, symbols, sizeof(symbols) / sizeof(symbols[0])))
        Py_RETURN_FALSE;
    pq.bound = 1;
    Py_RETURN_TRUE;
}

/* libpq's message text as a str (a new reference; NULL with a Python error). */
static PyObject *pg_text(const char *text) {
    return PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
}

/* Every result left on the connection read and freed; the message of the last failed
 * one into *message (a new str, or left NULL), unless one is there already. */
static void pg_results(le_pgconn *conn, int *ok, PyObject **message) {
    le_pgresult *res;
    while ((res = pq.get_result(conn)) != NULL) {
        if (pq.result_status(res) != LE_PGRES_COMMAND_OK) {
            *ok = 0;
            if (*message == NULL)
                *message = pg_text(pq.result_error(res));
        }
        pq.clear(res);
    }
}

/* After a Python error in the middle of a COPY: the server told to stop, what it had
 * sent read and dropped, the connection left idle (its transaction failed). */
static void pg_abandon(le_pgconn *conn) {
    char errbuf[256];
    le_pgcancel *cancel = pq.get_cancel(conn);
    if (cancel != NULL) {
        pq.cancel(cancel, errbuf, (int)sizeof(errbuf));
        pq.free_cancel(cancel);
    }
    char *data;
    int n;
    Py_BEGIN_ALLOW_THREADS;
    while ((n = pq.get_copy_data(conn, &data, 0)) > 0)
        pq.freemem(data);
    Py_END_ALLOW_THREADS;
    int ok = 1;
    PyObject *message = NULL;
    pg_results(conn, &ok, &message);
    Py_XDECREF(message);
}

/* What pg_copy_csv is told of each column: as PostgreSQL writes it (integers, numeric,
 * uuid), text (its "" is an empty string: the empty field), a boolean (t/f), a timestamp
 * without time zone or a date (DateStyle ISO). */
enum { PG_AS_IS = 0, PG_TEXT = 1, PG_BOOL = 2, PG_TIMESTAMP = 3, PG_DATE = 4 };

/* One field as the CSV writer writes the value: 1, or 0 when it is left to the driver. */
static int pg_field(Buf *b, const char *f, Py_ssize_t n, int kind) {
    if (n == 0) /* NULL */
        return 1;
    switch (kind) {
    case PG_TEXT:
        return n == 2 && f[0] == '"' && f[1] == '"' ? 1 : buf_put(b, f, n) < 0 ? -1 : 1;
    case PG_BOOL:
        if (n == 1 && (f[0] == 't' || f[0] == 'f'))
            return buf_put(b, f[0] == 't' ? "true" : "false", f[0] == 't' ? 4 : 5) < 0 ? -1 : 1;
        return 0;
    case PG_DATE: { /* 'YYYY-MM-DD' of years 1 to 9999 (no BC, no infinity: Python's date holds no such day) */
        int y, m, d;
        return n == 10 && iso_date((const unsigned char *)f, &y, &m, &d) ? (buf_put(b, f, n) < 0 ? -1 : 1) : 0;
    }
    case PG_TIMESTAMP: /* 'YYYY-MM-DD HH:MI:SS[.f…]' -> isoformat(): 'T', six digits of a fraction */
        return n <= 26 ? put_iso_datetime(b, (const unsigned char *)f, (int)n, 1) : 0;
    default:
        return buf_put(b, f, n) < 0 ? -1 : 1;
    }
}

/* A row of PostgreSQL's CSV (one COPY message, its LF taken off) as the CSV writer's
 * record: 1; 0 when a value is left to the driver (nothing is put); -1 on an error. */
static int pg_csv_row(Buf *b, const char *s, Py_ssize_t n, const int *kinds, Py_ssize_t ncols) {
    Py_ssize_t start = b->len, i = 0;
    for (Py_ssize_t c = 0; c < ncols; c++) {
        if (c) {
            if (i >= n || s[i] != ',' || buf_char(b, ',') < 0)
                goto left;
            i++;
        }
        Py_ssize_t from = i;
        if (i < n && s[i] == '"') { /* quoted: to the closing quote (inner quotes doubled) */
            for (i++;; i++) {
                if (i >= n)
                    goto left;
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        i++;
                        continue;
                    }
                    i++;
                    break;
                }
            }
        } else {
            while (i < n && s[i] != ',')
                i++;
        }
        int r = pg_field(b, s + from, i - from, kinds[c]);
        if (r < 0)
            return -1;
        if (r == 0)
            goto left;
    }
    if (i == n && buf_put(b, "\r\n", 2) == 0)
        return 1;
left:
    b->len = start;
    return PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(pg_copy_csv_doc,
             "pg_copy_csv(pgconn, sql, kinds, write, chunk) -> (rows, finished, message) | None\n\n"
             "Run sql, a COPY ... TO STDOUT (FORMAT csv) statement, on libpq's PGconn at the\n"
             "address pgconn (psycopg's PGconn.pgconn_ptr), inside its open transaction, and\n"
             "write its rows as the CSV writer's records through write(bytes, rows so far),\n"
             "about chunk bytes a call (kinds: one per column, 0 as PostgreSQL writes it, 1\n"
             "text, 2 boolean, 3 timestamp, 4 date; a value of another form stops the COPY\n"
             "before its row, with the message 'left to the driver').  Returns the rows written, whether they are all of\n"
             "them, and the server's message when it stopped with an error (the transaction\n"
             "has then failed: the caller rolls back to a savepoint of its own).  None when\n"
             "nothing was run: libpq is not bound, the connection is not open or not inside a\n"
             "transaction.  An error raised by write stops the COPY (the server is told to\n"
             "cancel it) and propagates.");

static PyObject *pg_copy_csv(PyObject *self, PyObject *args) {
    PyObject *address, *kinds_seq, *write;
    const char *sql;
    Py_ssize_t chunk;
    if (!PyArg_ParseTuple(args, "OsOOn:pg_copy_csv", &address, &sql, &kinds_seq, &write, &chunk))
        return NULL;
    PyObject *kinds_tuple = PySequence_Tuple(kinds_seq);
    if (kinds_tuple == NULL)
        return NULL;
    Py_ssize_t ncols = PyTuple_GET_SIZE(kinds_tuple);
    int kinds[256];
    if (ncols < 1 || ncols > 256) {
        Py_DECREF(kinds_tuple);
        Py_RETURN_NONE;
    }
    for (Py_ssize_t c = 0; c < ncols; c++)
        kinds[c] = (int)PyLong_AsLong(PyTuple_GET_ITEM(kinds_tuple, c));
    Py_DECREF(kinds_tuple);
    if (PyErr_Occurred())
        return NULL;
    le_pgconn *conn = (le_pgconn *)PyLong_AsVoidPtr(address);
    if (conn == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if (!pq.bound || pq.status(conn) != LE_CONNECTION_OK || pq.transaction_status(conn) != LE_PQTRANS_INTRANS)
        Py_RETURN_NONE;
    int nonblocking = pq.is_nonblocking(conn);
    if (nonblocking)
        pq.set_nonblocking(conn, 0); /* PQexec: send and wait for the first result */
    le_pgresult *res;
    Py_BEGIN_ALLOW_THREADS;
    res = pq.exec(conn, sql);
    Py_END_ALLOW_THREADS;
    Buf b = {0};
    Py_ssize_t rows = 0;
    int finished = 0, failed = 0, left = 0;
    PyObject *message = NULL, *result = NULL;
    if (res == NULL || pq.result_status(res) != LE_PGRES_COPY_OUT) {
        message = pg_text(res != NULL ? pq.result_error(res) : pq.error_message(conn));
        if (res != NULL)
            pq.clear(res);
        int ok = 1;
        pg_results(conn, &ok, &message);
        if (message != NULL) /* (no row was read: the driver reads them all) */
            result = Py_BuildValue("(nOO)", (Py_ssize_t)0, Py_False, message);
        goto out;
    }
    pq.clear(res);
    for (;;) {
        char *data;
        int n = pq.get_copy_data(conn, &data, 1);
        if (n > 0) {
            /* one row a message, ended by LF (a line break inside a value is quoted) */
            int put = pg_csv_row(&b, data, data[n - 1] == '\n' ? n - 1 : n, kinds, ncols);
            pq.freemem(data);
            if (put < 0) {
                failed = 1;
                break;
            }
            if (put == 0) { /* the driver reads from this row on */
                left = 1;
                break;
            }
            rows++;
            if (b.len >= chunk && flush_to(&b, write, rows) < 0) {
                failed = 1;
                break;
            }
        } else if (n == 0) { /* nothing complete yet: wait for the socket without the GIL */
            struct pollfd fd = {pq.socket(conn), POLLIN, 0};
            int ready;
            Py_BEGIN_ALLOW_THREADS;
            ready = poll(&fd, 1, 200);
            Py_END_ALLOW_THREADS;
            if (ready <= 0 && PyErr_CheckSignals() < 0) { /* (a timeout, or a signal: EINTR) */
                failed = 1;
                break;
            }
            if (ready > 0 && !pq.consume_input(conn)) { /* the connection is lost */
                message = pg_text(pq.error_message(conn));
                break;
            }
        } else {
            int ok = n == -1;
            pg_results(conn, &ok, &message);
            if (n == -2 && message == NULL)
                message = pg_text(pq.error_message(conn));
            finished = ok;
            break;
        }
    }
    if (failed || left)
        pg_abandon(conn);
    if (left && (message = PyUnicode_FromString("left to the driver")) == NULL)
        failed = 1;
    if (failed)
        goto out;
    if (b.len && flush_to(&b, write, rows) < 0) /* (rows before an error are whole rows) */
        goto out;
    result = Py_BuildValue("(nOO)", rows, finished ? Py_True : Py_False, message ? message : Py_None);
out:
    if (nonblocking)
        pq.set_nonblocking(conn, 1);
    Py_XDECREF(message);
    buf_free(&b);
    return result;
}

/* ------------------------------------------------------------------ the module */

static PyMethodDef methods[] = {
    {"csv_records", csv_records, METH_VARARGS, csv_records_doc},
    {"sql_inserts", sql_inserts, METH_VARARGS, sql_inserts_doc},
    {"xlsx_rows", xlsx_rows, METH_VARARGS, xlsx_rows_doc},
    {"sqlite_bind", sqlite_bind, METH_VARARGS, sqlite_bind_doc},
    {"sqlite_csv", sqlite_csv, METH_VARARGS, sqlite_csv_doc},
    {"sqlite_inserts", sqlite_inserts, METH_VARARGS, sqlite_inserts_doc},
    {"sqlite_rows", sqlite_rows, METH_VARARGS, sqlite_rows_doc},
    {"sqlite_texts", sqlite_texts, METH_VARARGS, sqlite_texts_doc},
    {"sqlite_close", sqlite_close, METH_O, sqlite_close_doc},
    {"sqlite_cells", sqlite_cells, METH_VARARGS, sqlite_cells_doc},
    {"pg_bind", pg_bind, METH_VARARGS, pg_bind_doc},
    {"pg_copy_csv", pg_copy_csv, METH_VARARGS, pg_copy_csv_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "learnexit._speedups",
    "The CSV, SQL and Excel writers' inner loop in C (optional: the writers fall back to Python).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
