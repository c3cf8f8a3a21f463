/* The verifier's hot loop in C: privatevault.ledger.recompute's pure-Python ``recompute_py``, the
 * same function, compiled. Keep the two in step: tests/unit/test_recompute.py runs both on the
 * same batches, tampered ones included, and requires identical results.
 *
 * recompute(data, next_seq, prev, frontier) -> (next_seq, prev, frontier, nodes, problem)
 *
 * ``data`` is a batch of records as rows of PostgreSQL's binary COPY format (seq, canonical,
 * prev_hash, record_hash: what ``CopyOut.batches`` joins), one after another. For each
 * record, in order, it checks the sequence number, the link to the previous record hash, the
 * record hash (SHA-256 over the domain tag, the previous hash and the canonical bytes) and the
 * sequence number inside the canonical bytes, then adds the record hash as a leaf to the RFC 9162
 * tree whose right frontier is ``frontier`` (the perfect subtree roots, largest first; their
 * levels are the set bits of ``next_seq - 1``).
 * ``nodes`` holds every perfect node the batch completed, by level, then index: what the ledger's
 * ``node_runs`` returns for the same sizes. ``problem`` is None or ``(code, seq, found)`` for the
 * first record that fails; the records before it are counted in the returned state.
 *
 * recompute_copy(conn, get_copy_data, freemem, count, header, next_seq, prev, frontier)
 *     -> ((next_seq, prev, frontier, nodes, problem), status)
 *
 * The same pass over the rows of a ``COPY ... TO STDOUT (FORMAT BINARY)`` in progress, taken from
 * libpq here, as they arrive, instead of from a ``bytes`` Python joined: ``conn`` is the
 * connection's ``PGconn *`` and ``get_copy_data`` and ``freemem`` the addresses of
 * ``PQgetCopyData`` and ``PQfreemem`` in the libpq that made it (``ledger.libpq`` finds them).
 * It takes ``count`` messages (the trailer not counted) or up to the end of the COPY, and parses
 * their bytes exactly as ``recompute`` parses the same messages joined (a row may span messages;
 * one cut short at the end is malformed), so the two agree on any bytes. ``header``: the first
 * message starts with the COPY header. ``status``: 0 when ``count`` messages were taken (or a
 * problem was found: the COPY is still running), 1 when the COPY ended, -2 when libpq failed
 * (its error message is the connection's), -3 when the first message is not a binary COPY
 * header. Rows are hashed while PostgreSQL sends the next ones; nothing is joined. Every message
 * taken is freed.
 *
 * SHA-256 is OpenSSL's (the one Python's hashlib uses), with the SHA extensions where the CPU has
 * them. The GIL is released while rows are read and hashed.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH 32
#define MAX_LEVELS 64

enum problem {
    OK = 0,
    GAP = 1,       /* the sequence number is not the next one */
    PREV = 2,      /* prev_hash is not the hash of the record before */
    DIGEST = 3,    /* record_hash does not match the record's bytes */
    INNER_SEQ = 4, /* the canonical bytes name another sequence number */
    MALFORMED = 5, /* the batch ends inside a record */
};

static const unsigned char DOMAIN[] = "privatevault/ledger/record/v1";
#define DOMAIN_LEN (sizeof(DOMAIN)) /* with its NUL: b"privatevault/ledger/record/v1\x00" */

static uint64_t be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void node_hash(const unsigned char *left, const unsigned char *right, unsigned char *out) {
    static const unsigned char one = 0x01;
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &one, 1);
    SHA256_Update(&ctx, left, HASH);
    SHA256_Update(&ctx, right, HASH);
    SHA256_Final(out, &ctx);
}

/* One row of PostgreSQL's binary COPY format: a 16-bit field count (4 here), then each field as a
 * 32-bit length and its bytes; the first field, seq, is an 8-byte bigint. 1 for a whole row (the
 * cursor moves past it), 0 when the data ends inside the row, -1 when the count or seq's length
 * is wrong or a field is NULL (length -1). */
static int tuple(const unsigned char **cursor, const unsigned char *end, const unsigned char **fields,
                 int32_t *lengths) {
    const unsigned char *p = *cursor;
    if (end - p < 2) return 0;
    if (p[0] != 0 || p[1] != 4) return -1;
    p += 2;
    for (int i = 0; i < 4; i++) {
        if (end - p < 4) return 0;
        int32_t len = (int32_t)be32(p);
        p += 4;
        if (len < 0 || (i == 0 && len != 8)) return -1;
        if (end - p < len) return 0;
        fields[i] = p, lengths[i] = len;
        p += len;
    }
    *cursor = p;
    return 1;
}

/* A growable byte buffer (the nodes of one level, or a row cut across messages). */
struct buffer {
    unsigned char *data;
    size_t len, cap;
};

static int append(struct buffer *b, const void *data, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (grown == NULL) return 0;
        b->data = grown, b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 1;
}

/* The pass's state: what the records verified so far leave, and what they completed. */
struct pass {
    long long next_seq;
    unsigned char prev[HASH];
    unsigned char stack[MAX_LEVELS][HASH];
    int depth;
    uint64_t size;
    struct buffer levels[MAX_LEVELS]; /* every node completed, by level, then index */
    int code, nomem;
    long long bad_seq, found;
};

static void set_problem(struct pass *s, int code, long long bad_seq, long long found) {
    s->code = code, s->bad_seq = bad_seq, s->found = found;
}

/* Check one record and add it to the tree; false (and s->code set) when it does not verify. */
static int add_record(struct pass *s, const unsigned char **fields, const int32_t *lengths) {
    long long seq = (long long)be64(fields[0]);
    const unsigned char *body = fields[1], *prev = fields[2], *digest = fields[3];
    uint32_t lc = (uint32_t)lengths[1], lp = (uint32_t)lengths[2], lr = (uint32_t)lengths[3];
    if (seq != s->next_seq) {
        set_problem(s, GAP, s->next_seq, seq);
        return 0;
    }
    if (lp != HASH || memcmp(prev, s->prev, HASH) != 0) {
        set_problem(s, PREV, seq, seq);
        return 0;
    }
    unsigned char computed[HASH];
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, DOMAIN, DOMAIN_LEN);
    SHA256_Update(&ctx, s->prev, HASH);
    SHA256_Update(&ctx, body, lc);
    SHA256_Final(computed, &ctx);
    if (lr != HASH || memcmp(digest, computed, HASH) != 0) {
        set_problem(s, DIGEST, seq, seq);
        return 0;
    }
    char needle[40];
    int n = snprintf(needle, sizeof needle, "\"seq\":%lld,", seq);
    if (memmem(body, lc, needle, (size_t)n) == NULL) {
        set_problem(s, INNER_SEQ, seq, seq);
        return 0;
    }
    memcpy(s->prev, computed, HASH);
    s->next_seq = seq + 1;

    /* The leaf, then every node it completes (merkle._grow without the dict). */
    static const unsigned char zero = 0x00;
    unsigned char node[HASH];
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, &zero, 1);
    SHA256_Update(&ctx, computed, HASH);
    SHA256_Final(node, &ctx);
    int level = 0, ok = append(&s->levels[0], node, HASH);
    for (uint64_t index = s->size; index & 1; index >>= 1) {
        node_hash(s->stack[--s->depth], node, node);
        level++;
        ok &= append(&s->levels[level], node, HASH);
    }
    memcpy(s->stack[s->depth++], node, HASH);
    s->size++;
    if (!ok) {
        s->nomem = 1;
        return 0;
    }
    return 1;
}

/* Every whole row from *cursor on; false when one does not verify or is malformed (s->code set). */
static int add_rows(struct pass *s, const unsigned char **cursor, const unsigned char *end) {
    const unsigned char *fields[4];
    int32_t lengths[4];
    int whole;
    while ((whole = tuple(cursor, end, fields, lengths)) == 1)
        if (!add_record(s, fields, lengths)) return 0;
    if (whole < 0) {
        set_problem(s, MALFORMED, s->next_seq, s->next_seq);
        return 0;
    }
    return 1;
}

/* The arguments both functions share: the state before the batch. */
static int start(struct pass *s, long long next_seq, Py_buffer *prev, PyObject *frontier) {
    if (next_seq < 1 || prev->len != HASH) {
        PyErr_SetString(PyExc_ValueError, "next_seq must be >= 1 and prev 32 bytes");
        return 0;
    }
    s->size = (uint64_t)(next_seq - 1);
    Py_ssize_t depth = PyTuple_GET_SIZE(frontier);
    if (depth != __builtin_popcountll(s->size)) {
        PyErr_Format(PyExc_ValueError, "a frontier at size %llu has %d nodes, not %zd", (unsigned long long)s->size,
                     __builtin_popcountll(s->size), depth);
        return 0;
    }
    for (Py_ssize_t i = 0; i < depth; i++) {
        PyObject *item = PyTuple_GET_ITEM(frontier, i);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) != HASH) {
            PyErr_SetString(PyExc_ValueError, "frontier nodes must be 32-byte bytes");
            return 0;
        }
        memcpy(s->stack[i], PyBytes_AS_STRING(item), HASH);
    }
    s->depth = (int)depth;
    s->next_seq = next_seq;
    memcpy(s->prev, prev->buf, HASH);
    return 1;
}

/* (next_seq, prev, frontier, nodes, problem) after the pass; NULL with an exception set. */
static PyObject *state(struct pass *s) {
    if (s->nomem) return PyErr_NoMemory();
    size_t total = 0;
    for (int level = 0; level < MAX_LEVELS; level++) total += s->levels[level].len;
    PyObject *nodes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (nodes == NULL) return NULL;
    char *out = PyBytes_AS_STRING(nodes);
    for (int level = 0; level < MAX_LEVELS; level++) {
        if (s->levels[level].len) memcpy(out, s->levels[level].data, s->levels[level].len);
        out += s->levels[level].len;
    }
    PyObject *stack = PyTuple_New(s->depth);
    if (stack == NULL) {
        Py_DECREF(nodes);
        return NULL;
    }
    for (int i = 0; i < s->depth; i++) {
        PyObject *item = PyBytes_FromStringAndSize((const char *)s->stack[i], HASH);
        if (item == NULL) {
            Py_DECREF(stack);
            Py_DECREF(nodes);
            return NULL;
        }
        PyTuple_SET_ITEM(stack, i, item);
    }
    if (s->code == OK)
        return Py_BuildValue("Ly#NNO", s->next_seq, s->prev, (Py_ssize_t)HASH, stack, nodes, Py_None);
    return Py_BuildValue("Ly#NN(iLL)", s->next_seq, s->prev, (Py_ssize_t)HASH, stack, nodes, s->code, s->bad_seq,
                         s->found);
}

static void release(struct pass *s) {
    if (s == NULL) return;
    for (int level = 0; level < MAX_LEVELS; level++) free(s->levels[level].data);
    PyMem_Free(s);
}

static PyObject *recompute(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, prev;
    long long next_seq;
    PyObject *frontier, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*Ly*O!", &data, &next_seq, &prev, &PyTuple_Type, &frontier)) return NULL;
    struct pass *s = PyMem_Calloc(1, sizeof *s);
    if (s == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!start(s, next_seq, &prev, frontier)) goto done;
    Py_BEGIN_ALLOW_THREADS
    const unsigned char *p = data.buf, *end = p + data.len;
    if (add_rows(s, &p, end) && p < end) set_problem(s, MALFORMED, s->next_seq, s->next_seq);
    Py_END_ALLOW_THREADS
    result = state(s);
done:
    release(s);
    PyBuffer_Release(&data);
    PyBuffer_Release(&prev);
    return result;
}

/* The libpq functions recompute_copy calls, by address (see the top of this file). */
typedef int (*get_copy_data_fn)(void *conn, char **buffer, int async);
typedef void (*freemem_fn)(void *ptr);

static const unsigned char SIGNATURE[] = "PGCOPY\n\377\r\n";
#define SIGNATURE_LEN 11 /* with its NUL */
#define HEADER_LEN 19    /* signature, flags, length of the header extension */

enum status { TAKEN = 0, ENDED = 1, FAILED = -2, NOT_BINARY = -3 };

/* Take up to ``count`` messages from the COPY, adding the rows as they arrive. */
static int stream(struct pass *s, void *conn, get_copy_data_fn get, freemem_fn freemem, long long count,
                  int header) {
    struct buffer cut = {0}; /* a row that began in an earlier message */
    int status = TAKEN;
    for (long long taken = 0; taken < count;) {
        char *message;
        int len = get(conn, &message, 0);
        if (len < 0) {
            status = len == -1 ? ENDED : FAILED;
            break;
        }
        const unsigned char *p = (const unsigned char *)message, *end = p + len;
        if (header) {
            header = 0;
            if (len < HEADER_LEN || memcmp(p, SIGNATURE, SIGNATURE_LEN) != 0 ||
                (uint64_t)(len - HEADER_LEN) < be32(p + 15)) {
                freemem(message);
                status = NOT_BINARY;
                break;
            }
            p += HEADER_LEN + be32(p + 15);
        }
        if (end - p == 2 && p[0] == 0xff && p[1] == 0xff) { /* the trailer: the end comes next */
            freemem(message);
            continue;
        }
        taken++;
        int ok;
        if (cut.len) {
            ok = append(&cut, p, (size_t)(end - p));
            if (ok) {
                const unsigned char *q = cut.data;
                ok = add_rows(s, &q, cut.data + cut.len);
                cut.len -= (size_t)(q - cut.data);
                memmove(cut.data, q, cut.len);
            } else {
                s->nomem = 1;
            }
        } else {
            ok = add_rows(s, &p, end);
            if (ok && p < end && !append(&cut, p, (size_t)(end - p))) ok = 0, s->nomem = 1;
        }
        freemem(message);
        if (!ok) goto done; /* a problem: the caller cancels the rest */
    }
    if (cut.len && s->code == OK && status != FAILED && status != NOT_BINARY)
        set_problem(s, MALFORMED, s->next_seq, s->next_seq);
done:
    free(cut.data);
    return status;
}

static PyObject *recompute_copy(PyObject *self, PyObject *args) {
    (void)self;
    unsigned long long conn, get, freemem;
    long long count, next_seq;
    int header;
    Py_buffer prev;
    PyObject *frontier, *result = NULL;
    if (!PyArg_ParseTuple(args, "KKKLpLy*O!", &conn, &get, &freemem, &count, &header, &next_seq, &prev, &PyTuple_Type,
                          &frontier))
        return NULL;
    struct pass *s = PyMem_Calloc(1, sizeof *s);
    if (s == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!conn || !get || !freemem) {
        PyErr_SetString(PyExc_ValueError, "conn, get_copy_data and freemem must be addresses");
        goto done;
    }
    if (!start(s, next_seq, &prev, frontier)) goto done;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = stream(s, (void *)(uintptr_t)conn, (get_copy_data_fn)(uintptr_t)get, (freemem_fn)(uintptr_t)freemem,
                    count, header);
    Py_END_ALLOW_THREADS
    PyObject *pass = state(s);
    if (pass != NULL) {
        result = Py_BuildValue("Ni", pass, status);
    }
done:
    release(s);
    PyBuffer_Release(&prev);
    return result;
}

static PyMethodDef methods[] = {
    {"recompute", recompute, METH_VARARGS,
     "recompute(data, next_seq, prev, frontier) -> (next_seq, prev, frontier, nodes, problem)"},
    {"recompute_copy", recompute_copy, METH_VARARGS,
     "recompute_copy(conn, get_copy_data, freemem, count, header, next_seq, prev, frontier)"
     " -> ((next_seq, prev, frontier, nodes, problem), status)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_recompute", "The verifier's hot loop, compiled (see recompute.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__recompute(void) { return PyModule_Create(&module); }
