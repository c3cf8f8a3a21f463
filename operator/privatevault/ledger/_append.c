/* The ledger writer's hot loop in C: privatevault.ledger.appendrows's pure-Python ``records_py``
 * and ``nodes_py``, the same functions, compiled. Keep them in step: tests/unit/test_appendrows.py
 * runs both on the same input and requires identical results (and the bodies identical to
 * ``Event.canonical``). The writer's own code: nothing here is shared with the verifier's
 * ``_recompute.c``, which checks what this writes.
 *
 * records(seq, prev, time, recorded, items, tenants) -> (rows, bodies, digests)
 *
 *   Chains records after record ``seq`` whose hash is ``prev``. Each item is
 *   ``(head, tenant, slot, middle, key)``: the canonical bytes before ``"seq"`` and the
 *   ``"tenant":…`` member (``Event.canonical_parts``), the index of the record's tenant in
 *   ``tenants`` (-1: a record of no tenant, not linked), and its fixed binary COPY fields (tenant …
 *   outcome; the idempotency key). ``tenants[slot]`` is a list ``[tenantSeq, record hash]`` of the
 *   tenant's newest record, advanced in place. ``time`` is the canonical time, ``recorded`` the
 *   binary COPY field of ``recorded_at``. Returns the records' binary COPY rows (no header, no
 *   trailer), their canonical bytes and their record hashes.
 *
 * jcs(value) -> bytes | None: an event's canonical bytes (below, by jcs_value).
 *
 * fields(columns, key) -> (middle, key field): the binary COPY fields of an event's columns
 *   (tenant … outcome: str or None) and of its idempotency key, each a big-endian length (-1:
 *   NULL) and the UTF-8 bytes (``writer._fixed_fields_py``).
 *
 * nodes(size, frontier, digests) -> (rows, frontier)
 *
 *   Adds the record hashes ``digests`` as RFC 9162 leaves to the tree of ``size`` leaves whose
 *   right frontier (perfect subtree roots, largest first) is ``frontier``; returns the binary COPY
 *   rows (level, idx, hash) of every perfect node completed, leaves included, in the order they
 *   complete, and the grown tree's frontier.
 *
 * send(conn, functions, statements) -> None | (index, sqlstate, message)
 *
 *   Runs ``statements`` in order on the libpq connection ``conn`` (a ``PGconn *``, from
 *   ``libpq.send_functions`` with the addresses of the libpq functions it needs), the GIL released
 *   throughout: each is ``(query, data)``, a plain statement when ``data`` is None, else a
 *   ``COPY … FROM STDIN`` fed ``data`` whole. The connection is made blocking for the call and
 *   put back as it was. Stops at the first statement that fails: its index, SQLSTATE and message
 *   (the connection then in a failed transaction, or broken, for the caller to roll back).
 *   A COMMIT that ends in ROLLBACK fails too.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HASH 32
#define LEVELS 64

static const unsigned char DOMAIN[] = "privatevault/ledger/record/v1";
#define DOMAIN_LEN (sizeof(DOMAIN)) /* with its NUL, as chain.DOMAIN */

typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static int grow(buffer *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int put(buffer *b, const void *data, size_t len) {
    if (grow(b, len) < 0) return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static int put_be(buffer *b, uint64_t value, int bytes) {
    unsigned char out[8];
    for (int i = bytes - 1; i >= 0; i--, value >>= 8) out[i] = (unsigned char)(value & 0xff);
    return put(b, out, (size_t)bytes);
}

static int put_bytes(buffer *b, PyObject *bytes) {
    return put(b, PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
}

static int put_text(buffer *b, const char *text) { return put(b, text, strlen(text)); }

static PyObject *take_bytes(buffer *b) {
    PyObject *out = PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
    b->len = 0;
    return out;
}

static int is_hash(PyObject *value, const char *what) {
    if (!PyBytes_Check(value) || PyBytes_GET_SIZE(value) != HASH) {
        PyErr_Format(PyExc_ValueError, "%s is not a %d-byte hash", what, HASH);
        return 0;
    }
    return 1;
}

static PyObject *records(PyObject *self, PyObject *args) {
    (void)self;
    long long seq;
    PyObject *prev_obj, *time, *recorded, *items, *tenants;
    if (!PyArg_ParseTuple(args, "LSSSO!O!", &seq, &prev_obj, &time, &recorded, &PyList_Type, &items, &PyList_Type,
                          &tenants))
        return NULL;
    if (!is_hash(prev_obj, "prev")) return NULL;
    unsigned char prev[HASH];
    memcpy(prev, PyBytes_AS_STRING(prev_obj), HASH);
    Py_ssize_t count = PyList_GET_SIZE(items);
    buffer rows = {0}, body = {0};
    PyObject *bodies = PyList_New(count), *digests = PyList_New(count), *result = NULL;
    if (bodies == NULL || digests == NULL) goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(items, i), *head, *tenant, *middle, *key;
        Py_ssize_t slot;
        if (!PyArg_ParseTuple(item, "SSnSS", &head, &tenant, &slot, &middle, &key)) goto done;
        seq += 1;
        char number[48];
        body.len = 0;
        snprintf(number, sizeof number, ",\"seq\":%lld,", seq);
        if (put_bytes(&body, head) < 0 || put_text(&body, number) < 0 || put_bytes(&body, tenant) < 0) goto done;
        PyObject *state = NULL;
        long long tenant_seq = 0;
        if (slot >= 0) {
            if (slot >= PyList_GET_SIZE(tenants) || !PyList_Check(state = PyList_GET_ITEM(tenants, slot)) ||
                PyList_GET_SIZE(state) != 2) {
                PyErr_SetString(PyExc_ValueError, "a tenant slot is not a [tenantSeq, hash] list");
                goto done;
            }
            tenant_seq = PyLong_AsLongLong(PyList_GET_ITEM(state, 0));
            if (tenant_seq == -1 && PyErr_Occurred()) goto done;
            PyObject *tenant_prev = PyList_GET_ITEM(state, 1);
            if (!is_hash(tenant_prev, "a tenant's previous hash")) goto done;
            unsigned char encoded[48];
            EVP_EncodeBlock(encoded, (const unsigned char *)PyBytes_AS_STRING(tenant_prev), HASH);
            snprintf(number, sizeof number, "\",\"tenantSeq\":%lld", tenant_seq + 1);
            if (put_text(&body, ",\"tenantPrev\":\"") < 0 || put_text(&body, (const char *)encoded) < 0 ||
                put_text(&body, number) < 0)
                goto done;
        }
        if (put_text(&body, ",\"time\":") < 0 || put_bytes(&body, time) < 0 || put_text(&body, ",\"v\":1}") < 0)
            goto done;
        unsigned char digest[HASH];
        SHA256_CTX ctx;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, DOMAIN, DOMAIN_LEN);
        SHA256_Update(&ctx, prev, HASH);
        SHA256_Update(&ctx, body.data, body.len);
        SHA256_Final(digest, &ctx);
        PyObject *body_obj = PyBytes_FromStringAndSize(body.data, (Py_ssize_t)body.len);
        PyObject *digest_obj = PyBytes_FromStringAndSize((const char *)digest, HASH);
        if (body_obj == NULL || digest_obj == NULL) {
            Py_XDECREF(body_obj);
            Py_XDECREF(digest_obj);
            goto done;
        }
        PyList_SET_ITEM(bodies, i, body_obj);
        PyList_SET_ITEM(digests, i, digest_obj);
        if (state != NULL) {
            PyObject *next = PyLong_FromLongLong(tenant_seq + 1);
            if (next == NULL) goto done;
            Py_INCREF(digest_obj);
            if (PyList_SetItem(state, 0, next) < 0 || PyList_SetItem(state, 1, digest_obj) < 0) goto done;
        }
        /* The row: 14 fields; seq; recorded_at; tenant … outcome; canonical; prev_hash; record_hash; key. */
        if (put_be(&rows, 14, 2) < 0 || put_be(&rows, 8, 4) < 0 || put_be(&rows, (uint64_t)seq, 8) < 0 ||
            put_bytes(&rows, recorded) < 0 || put_bytes(&rows, middle) < 0 || put_be(&rows, body.len, 4) < 0 ||
            put(&rows, body.data, body.len) < 0 || put_be(&rows, HASH, 4) < 0 || put(&rows, prev, HASH) < 0 ||
            put_be(&rows, HASH, 4) < 0 || put(&rows, digest, HASH) < 0 || put_bytes(&rows, key) < 0)
            goto done;
        memcpy(prev, digest, HASH);
    }
    PyObject *stream = take_bytes(&rows);
    if (stream != NULL) result = Py_BuildValue("(NOO)", stream, bodies, digests);
done:
    PyMem_Free(rows.data);
    PyMem_Free(body.data);
    Py_XDECREF(bodies);
    Py_XDECREF(digests);
    return result;
}

static void sha256_tagged(unsigned char tag, const unsigned char *a, const unsigned char *b, unsigned char *out) {
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &tag, 1);
    SHA256_Update(&ctx, a, HASH);
    if (b != NULL) SHA256_Update(&ctx, b, HASH);
    SHA256_Final(out, &ctx);
}

static int put_node(buffer *b, int level, unsigned long long index, const unsigned char *hash) {
    /* 3 fields: level (int2), idx (int8), hash (bytea). */
    if (put_be(b, 3, 2) < 0 || put_be(b, 2, 4) < 0 || put_be(b, (uint64_t)level, 2) < 0 || put_be(b, 8, 4) < 0 ||
        put_be(b, index, 8) < 0 || put_be(b, HASH, 4) < 0)
        return -1;
    return put(b, hash, HASH);
}

static PyObject *nodes(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long size;
    PyObject *frontier_obj, *digests;
    if (!PyArg_ParseTuple(args, "KO!O!", &size, &PyList_Type, &frontier_obj, &PyList_Type, &digests)) return NULL;
    /* The frontier by level: the roots of the perfect subtrees are at the set bits of ``size``. */
    unsigned char frontier[LEVELS][HASH];
    Py_ssize_t given = PyList_GET_SIZE(frontier_obj), next = 0;
    for (int level = LEVELS - 1; level >= 0; level--) {
        if (!(size >> level & 1)) continue;
        if (next >= given) break;
        PyObject *hash = PyList_GET_ITEM(frontier_obj, next++);
        if (!is_hash(hash, "a frontier node")) return NULL;
        memcpy(frontier[level], PyBytes_AS_STRING(hash), HASH);
    }
    if (next != given || given != __builtin_popcountll(size)) {
        PyErr_Format(PyExc_ValueError, "a tree of %llu leaves has %d frontier nodes, not %zd", size,
                     __builtin_popcountll(size), given);
        return NULL;
    }
    buffer rows = {0};
    Py_ssize_t count = PyList_GET_SIZE(digests);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *digest = PyList_GET_ITEM(digests, i);
        if (!is_hash(digest, "a record hash")) goto fail;
        unsigned char hash[HASH];
        sha256_tagged(0x00, (const unsigned char *)PyBytes_AS_STRING(digest), NULL, hash);
        unsigned long long index = size;
        int level = 0;
        if (put_node(&rows, level, index, hash) < 0) goto fail;
        while (index & 1) {
            sha256_tagged(0x01, frontier[level], hash, hash);
            level++;
            index >>= 1;
            if (put_node(&rows, level, index, hash) < 0) goto fail;
        }
        memcpy(frontier[level], hash, HASH);
        size++;
    }
    PyObject *grown = PyList_New(0);
    if (grown == NULL) goto fail;
    for (int level = LEVELS - 1; level >= 0; level--) {
        if (!(size >> level & 1)) continue;
        PyObject *hash = PyBytes_FromStringAndSize((const char *)frontier[level], HASH);
        if (hash == NULL || PyList_Append(grown, hash) < 0) {
            Py_XDECREF(hash);
            Py_DECREF(grown);
            goto fail;
        }
        Py_DECREF(hash);
    }
    PyObject *stream = take_bytes(&rows);
    PyMem_Free(rows.data);
    if (stream == NULL) {
        Py_DECREF(grown);
        return NULL;
    }
    return Py_BuildValue("(NN)", stream, grown);
fail:
    PyMem_Free(rows.data);
    return NULL;
}


/* jcs(value) -> bytes | None
 *
 *   RFC 8785 (JCS) bytes of a plain value, as ``event._jcs_py`` writes them: strings (escaped as
 *   ``json`` escapes them without ``ensure_ascii``), integers in JSON's safe range, booleans, None,
 *   lists and tuples, dicts whose keys are ASCII strings (sorted). None for anything else (a float,
 *   another key, a lone surrogate, nesting deeper than 100): the caller then runs the Python path,
 *   which hands such values to ``rfc8785`` or raises as it always did.
 */
#define JCS_DEPTH 100
#define SAFE_INT 9007199254740991LL /* 2**53 - 1 */

static int jcs_string(buffer *b, PyObject *text) {
    /* 1: written, 0: not plain (a lone surrogate), -1: error. */
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    if (grow(b, (size_t)size * 6 + 2) < 0) return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char)utf8[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c >= 0x20) {
            *out++ = (char)c;
        } else {
            *out++ = '\\';
            switch (c) {
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            default:
                out += sprintf(out, "u%04x", c);
            }
        }
    }
    *out++ = '"';
    b->len = (size_t)(out - b->data);
    return 1;
}

static int key_order(const void *a, const void *b) {
    /* ASCII keys: code point order is byte order; a key may hold NUL, so lengths, not strcmp. */
    PyObject *left = *(PyObject *const *)a, *right = *(PyObject *const *)b;
    Py_ssize_t left_len = PyUnicode_GET_LENGTH(left), right_len = PyUnicode_GET_LENGTH(right);
    int order = memcmp(PyUnicode_DATA(left), PyUnicode_DATA(right), (size_t)(left_len < right_len ? left_len : right_len));
    return order ? order : (left_len > right_len) - (left_len < right_len);
}

static int jcs_value(buffer *b, PyObject *value, int depth) {
    /* 1: written, 0: not plain, -1: error. */
    if (depth > JCS_DEPTH) return 0;
    PyTypeObject *kind = Py_TYPE(value);
    if (kind == &PyUnicode_Type) return jcs_string(b, value);
    if (value == Py_None) return put_text(b, "null") < 0 ? -1 : 1;
    if (value == Py_True) return put_text(b, "true") < 0 ? -1 : 1;
    if (value == Py_False) return put_text(b, "false") < 0 ? -1 : 1;
    if (kind == &PyLong_Type) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred()) return -1;
        if (overflow || number > SAFE_INT || number < -SAFE_INT) return 0;
        char digits[32];
        snprintf(digits, sizeof digits, "%lld", number);
        return put_text(b, digits) < 0 ? -1 : 1;
    }
    if (kind == &PyList_Type || kind == &PyTuple_Type) {
        PyObject *items = PySequence_Fast(value, "");
        if (items == NULL) return -1;
        int done = put_text(b, "[") < 0 ? -1 : 1;
        for (Py_ssize_t i = 0; done == 1 && i < PySequence_Fast_GET_SIZE(items); i++) {
            if (i && put_text(b, ",") < 0) done = -1;
            else done = jcs_value(b, PySequence_Fast_GET_ITEM(items, i), depth + 1);
        }
        Py_DECREF(items);
        if (done != 1) return done;
        return put_text(b, "]") < 0 ? -1 : 1;
    }
    if (kind == &PyDict_Type) {
        Py_ssize_t count = PyDict_GET_SIZE(value), at = 0, i = 0;
        PyObject **keys = PyMem_Malloc(sizeof(PyObject *) * (size_t)(count ? count : 1)), *key, *item;
        if (keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        int done = 1;
        while (PyDict_Next(value, &at, &key, &item)) {
            if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key)) {
                done = 0;
                break;
            }
            keys[i++] = key;
        }
        if (done == 1) {
            qsort(keys, (size_t)count, sizeof(PyObject *), key_order);
            done = put_text(b, "{") < 0 ? -1 : 1;
            for (i = 0; done == 1 && i < count; i++) {
                if (i && put_text(b, ",") < 0) {
                    done = -1;
                    break;
                }
                done = jcs_string(b, keys[i]);
                if (done == 1 && put_text(b, ":") < 0) done = -1;
                if (done == 1) {
                    item = PyDict_GetItemWithError(value, keys[i]);
                    done = item == NULL ? -1 : jcs_value(b, item, depth + 1);
                }
            }
            if (done == 1 && put_text(b, "}") < 0) done = -1;
        }
        PyMem_Free(keys);
        return done;
    }
    return 0;
}

static PyObject *jcs(PyObject *self, PyObject *value) {
    (void)self;
    buffer out = {0};
    int done = jcs_value(&out, value, 0);
    PyObject *result = NULL;
    if (done == 1) result = take_bytes(&out);
    else if (done == 0) result = Py_NewRef(Py_None);
    PyMem_Free(out.data);
    return result;
}


/* -- send: statements and COPY data on psycopg's own libpq connection, the GIL released ---- */

typedef void *(*exec_fn)(void *conn, const char *query);
typedef int (*status_fn)(const void *result);
typedef char *(*error_field_fn)(const void *result, int field);
typedef char *(*result_text_fn)(const void *result);
typedef void (*clear_fn)(void *result);
typedef int (*put_copy_data_fn)(void *conn, const char *buffer, int nbytes);
typedef int (*put_copy_end_fn)(void *conn, const char *errormsg);
typedef void *(*get_result_fn)(void *conn);
typedef char *(*conn_error_fn)(const void *conn);
typedef int (*set_nonblocking_fn)(void *conn, int arg);
typedef int (*is_nonblocking_fn)(const void *conn);

#define PGRES_COMMAND_OK 1
#define PGRES_COPY_IN 4
#define PG_DIAG_SQLSTATE 'C'

typedef struct {
    exec_fn exec;
    status_fn status;
    error_field_fn error_field;
    result_text_fn error_message;
    result_text_fn cmd_status;
    clear_fn clear;
    put_copy_data_fn put_copy_data;
    put_copy_end_fn put_copy_end;
    get_result_fn get_result;
    conn_error_fn conn_error;
    set_nonblocking_fn set_nonblocking;
    is_nonblocking_fn is_nonblocking;
} libpq_fns;

typedef struct {
    const char *query;
    const char *data; /* NULL: a plain statement */
    Py_ssize_t size;
} statement;

typedef struct {
    Py_ssize_t index; /* -1: every statement succeeded */
    char sqlstate[6];
    char message[512];
} send_error;

static void fail_with(send_error *error, Py_ssize_t index, const libpq_fns *pq, void *conn, void *result) {
    const char *state = result ? pq->error_field(result, PG_DIAG_SQLSTATE) : NULL;
    const char *text = result ? pq->error_message(result) : NULL;
    if (text == NULL || text[0] == '\0') text = pq->conn_error(conn);
    error->index = index;
    snprintf(error->sqlstate, sizeof(error->sqlstate), "%s", state ? state : "");
    snprintf(error->message, sizeof(error->message), "%s", text ? text : "");
}

/* The results still pending after a statement (a COPY's, or one that failed): read and cleared. */
static void drain(const libpq_fns *pq, void *conn) {
    void *result;
    while ((result = pq->get_result(conn)) != NULL) pq->clear(result);
}

static void send_all(const libpq_fns *pq, void *conn, const statement *list, Py_ssize_t count, send_error *error) {
    for (Py_ssize_t i = 0; i < count; i++) {
        void *result = pq->exec(conn, list[i].query);
        int status = result ? pq->status(result) : -1;
        if (list[i].data == NULL) {
            const char *tag = result ? pq->cmd_status(result) : NULL;
            int rolled_back = status == PGRES_COMMAND_OK && tag && strcmp(list[i].query, "COMMIT") == 0 &&
                              strcmp(tag, "COMMIT") != 0;
            if (status != PGRES_COMMAND_OK || rolled_back) {
                fail_with(error, i, pq, conn, rolled_back ? NULL : result);
                if (rolled_back) snprintf(error->message, sizeof(error->message), "the transaction ended in %s", tag);
                if (result) pq->clear(result);
                drain(pq, conn);
                return;
            }
            pq->clear(result);
            continue;
        }
        if (status != PGRES_COPY_IN) {
            fail_with(error, i, pq, conn, result);
            if (result) pq->clear(result);
            drain(pq, conn);
            return;
        }
        pq->clear(result);
        const char *data = list[i].data;
        Py_ssize_t left = list[i].size;
        int ok = 1;
        while (ok && left > 0) {
            int chunk = left > (1 << 30) ? (1 << 30) : (int)left;
            ok = pq->put_copy_data(conn, data, chunk) == 1;
            data += chunk;
            left -= chunk;
        }
        ok = pq->put_copy_end(conn, ok ? NULL : "the writer could not send the rows") == 1 && ok;
        result = pq->get_result(conn);
        status = result ? pq->status(result) : -1;
        if (!ok || status != PGRES_COMMAND_OK) {
            fail_with(error, i, pq, conn, result);
            if (result) pq->clear(result);
            drain(pq, conn);
            return;
        }
        pq->clear(result);
        drain(pq, conn);
    }
}

static PyObject *send(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long conn_address;
    PyObject *functions, *statements;
    if (!PyArg_ParseTuple(args, "KO!O!", &conn_address, &PyTuple_Type, &functions, &PyTuple_Type, &statements))
        return NULL;
    if (PyTuple_GET_SIZE(functions) != 12) {
        PyErr_SetString(PyExc_ValueError, "send needs the addresses of 12 libpq functions");
        return NULL;
    }
    void *addresses[12];
    for (Py_ssize_t i = 0; i < 12; i++) {
        addresses[i] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(functions, i));
        if (addresses[i] == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a libpq function address is NULL");
            return NULL;
        }
    }
    libpq_fns pq;
    memcpy(&pq, addresses, sizeof(pq));
    Py_ssize_t count = PyTuple_GET_SIZE(statements);
    statement *list = PyMem_Calloc(count ? count : 1, sizeof(statement));
    if (list == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(statements, i);
        PyObject *query, *data;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 || !PyBytes_Check(query = PyTuple_GET_ITEM(item, 0)) ||
            ((data = PyTuple_GET_ITEM(item, 1)) != Py_None && !PyBytes_Check(data))) {
            PyMem_Free(list);
            PyErr_SetString(PyExc_TypeError, "each statement is (query bytes, data bytes or None)");
            return NULL;
        }
        list[i].query = PyBytes_AS_STRING(query);
        list[i].data = data == Py_None ? NULL : PyBytes_AS_STRING(data);
        list[i].size = data == Py_None ? 0 : PyBytes_GET_SIZE(data);
    }
    void *conn = (void *)(uintptr_t)conn_address;
    send_error error = {-1, "", ""};
    /* The statements tuple (and the bytes in it) is the caller's: alive until this returns. */
    Py_BEGIN_ALLOW_THREADS
    int was_nonblocking = pq.is_nonblocking(conn);
    if (was_nonblocking) pq.set_nonblocking(conn, 0);
    send_all(&pq, conn, list, count, &error);
    if (was_nonblocking) pq.set_nonblocking(conn, 1);
    Py_END_ALLOW_THREADS
    PyMem_Free(list);
    if (error.index < 0) Py_RETURN_NONE;
    return Py_BuildValue("(nss)", error.index, error.sqlstate, error.message);
}

/* -- fields: an event's fixed binary COPY fields ------------------------------------------- */

static int put_column(PyObject *value, char **out, Py_ssize_t *used, Py_ssize_t *room) {
    const char *data = NULL;
    Py_ssize_t size = -1;
    if (value != Py_None) {
        if (!PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "a column is a str or None");
            return -1;
        }
        data = PyUnicode_AsUTF8AndSize(value, &size);
        if (data == NULL) return -1;
        if (size > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "a column is too long for a COPY field");
            return -1;
        }
    }
    Py_ssize_t need = *used + 4 + (size > 0 ? size : 0);
    if (need > *room) {
        Py_ssize_t grown = need * 2;
        char *bigger = PyMem_Realloc(*out, grown);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        *out = bigger;
        *room = grown;
    }
    uint32_t length = (uint32_t)(int32_t)size; /* -1: NULL */
    unsigned char *at = (unsigned char *)*out + *used;
    at[0] = length >> 24;
    at[1] = length >> 16;
    at[2] = length >> 8;
    at[3] = length;
    if (size > 0) memcpy(at + 4, data, size);
    *used = need;
    return 0;
}

/* fields(columns, key) -> (middle, key field): writer._fixed_fields, compiled. */
static PyObject *fields(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *columns, *key;
    if (!PyArg_ParseTuple(args, "O!U", &PyTuple_Type, &columns, &key)) return NULL;
    Py_ssize_t room = 256, used = 0;
    char *out = PyMem_Malloc(room);
    if (out == NULL) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(columns); i++) {
        if (put_column(PyTuple_GET_ITEM(columns, i), &out, &used, &room) < 0) {
            PyMem_Free(out);
            return NULL;
        }
    }
    Py_ssize_t middle = used;
    if (put_column(key, &out, &used, &room) < 0) {
        PyMem_Free(out);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(y#y#)", out, middle, out + middle, used - middle);
    PyMem_Free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"records", records, METH_VARARGS, "Chain records and make their binary COPY rows (see appendrows.records_py)."},
    {"nodes", nodes, METH_VARARGS, "Grow the Merkle tree and make its nodes' binary COPY rows (see appendrows.nodes_py)."},
    {"jcs", jcs, METH_O, "RFC 8785 bytes of a plain value, or None (see event._jcs_py)."},
    {"fields", fields, METH_VARARGS, "An event's fixed binary COPY fields (see writer._fixed_fields)."},
    {"send", send, METH_VARARGS, "Run statements and COPY data on a libpq connection, the GIL released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_append", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__append(void) { return PyModule_Create(&module); }
