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
 * Nothing here keeps state between calls, and the GIL is held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
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

static int put_float(Buf *b, PyObject *v) { /* repr(); only finite values come here */
    char *s = PyOS_double_to_string(PyFloat_AS_DOUBLE(v), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (s == NULL)
        return ERROR;
    int rc = buf_put(b, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

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
    for (Py_ssize_t c = 0; c < t.ncols; c++) {
        PyObject *letter = PyTuple_GET_ITEM(letters, c);
        if (!PyUnicode_Check(letter) || !PyUnicode_IS_ASCII(letter) || PyUnicode_GET_LENGTH(letter) == 0) {
            PyErr_SetString(PyExc_ValueError, "column letters must be non-empty ASCII str");
            goto done;
        }
    }
    for (Py_ssize_t r = 0; r < t.nrows; r++) {
        char row[24];
        int nrow = snprintf(row, sizeof(row), "%zd", first + r);
        if (buf_put(&b, "<row r=\"", 8) < 0 || buf_put(&b, row, nrow) < 0 || buf_put(&b, "\">", 2) < 0)
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

/* ------------------------------------------------------------------ the module */

static PyMethodDef methods[] = {
    {"csv_records", csv_records, METH_VARARGS, csv_records_doc},
    {"sql_inserts", sql_inserts, METH_VARARGS, sql_inserts_doc},
    {"xlsx_rows", xlsx_rows, METH_VARARGS, xlsx_rows_doc},
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
