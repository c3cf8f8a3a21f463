/* The verifier's hot loop in C: privatevault.ledger.recompute's pure-Python ``recompute_py``, the
 * same function, compiled. Keep the two in step: tests/unit/test_recompute.py runs both on the
 * same batches, tampered ones included, and requires identical results.
 *
 * recompute(data, next_seq, prev, frontier) -> (next_seq, prev, frontier, nodes, problem)
 *
 * ``data`` is a batch of records as rows of PostgreSQL's binary COPY format (seq, canonical,
 * prev_hash, record_hash: what ``Ledger.record_batches`` reads), one after another. For each
 * record, in order, it checks the sequence number, the link to the previous record hash, the
 * record hash (SHA-256 over the domain tag, the previous hash and the canonical bytes) and the
 * sequence number inside the canonical bytes, then adds the record hash as a leaf to the RFC 9162 tree whose right frontier is ``frontier`` (the
 * perfect subtree roots, largest first; their levels are the set bits of ``next_seq - 1``).
 * ``nodes`` holds every perfect node the batch completed, by level, then index: what the ledger's
 * ``node_runs`` returns for the same sizes. ``problem`` is None or ``(code, seq, found)`` for the
 * first record that fails; the records before it are counted in the returned state.
 *
 * SHA-256 is OpenSSL's (the one Python's hashlib uses), with the SHA extensions where the CPU has
 * them. The GIL is released while a batch is hashed, so the ledger's reader thread fetches the
 * next batch meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
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
 * 32-bit length and its bytes; the first field, seq, is an 8-byte bigint. False when the data ends
 * inside the row, the count or seq's length is wrong, or a field is NULL (length -1). */
static int tuple(const unsigned char **cursor, const unsigned char *end, const unsigned char **fields,
                 int32_t *lengths) {
    const unsigned char *p = *cursor;
    if (end - p < 2 || p[0] != 0 || p[1] != 4) return 0;
    p += 2;
    for (int i = 0; i < 4; i++) {
        if (end - p < 4) return 0;
        int32_t len = (int32_t)be32(p);
        p += 4;
        if (len < 0 || end - p < len || (i == 0 && len != 8)) return 0;
        fields[i] = p, lengths[i] = len;
        p += len;
    }
    *cursor = p;
    return 1;
}

/* The sizes of a batch, known before it is hashed. */
struct batch {
    const unsigned char *data;
    Py_ssize_t len;
    long long next_seq;
    unsigned char prev[HASH];
    unsigned char stack[MAX_LEVELS][HASH];
    int depth;
    unsigned char *nodes; /* by level, then index */
    Py_ssize_t offsets[MAX_LEVELS + 1];
    Py_ssize_t records; /* how many records the data holds, at most */
    int code;
    long long bad_seq, found;
};

static void run(struct batch *b) {
    const unsigned char *p = b->data, *end = b->data + b->len;
    Py_ssize_t written[MAX_LEVELS + 1] = {0};
    uint64_t size = (uint64_t)(b->next_seq - 1);
    char needle[40];
    while (p < end) {
        const unsigned char *fields[4];
        int32_t lengths[4];
        if (!tuple(&p, end, fields, lengths)) {
            b->code = MALFORMED, b->bad_seq = b->found = b->next_seq;
            return;
        }
        long long seq = (long long)be64(fields[0]);
        const unsigned char *body = fields[1], *prev = fields[2], *digest = fields[3];
        uint32_t lc = (uint32_t)lengths[1], lp = (uint32_t)lengths[2], lr = (uint32_t)lengths[3];
        if (seq != b->next_seq) {
            b->code = GAP, b->bad_seq = b->next_seq, b->found = seq;
            return;
        }
        b->bad_seq = b->found = seq;
        if (lp != HASH || memcmp(prev, b->prev, HASH) != 0) {
            b->code = PREV;
            return;
        }
        unsigned char computed[HASH];
        SHA256_CTX ctx;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, DOMAIN, DOMAIN_LEN);
        SHA256_Update(&ctx, b->prev, HASH);
        SHA256_Update(&ctx, body, lc);
        SHA256_Final(computed, &ctx);
        if (lr != HASH || memcmp(digest, computed, HASH) != 0) {
            b->code = DIGEST;
            return;
        }
        int n = snprintf(needle, sizeof needle, "\"seq\":%lld,", seq);
        if (memmem(body, lc, needle, (size_t)n) == NULL) {
            b->code = INNER_SEQ;
            return;
        }
        memcpy(b->prev, computed, HASH);
        b->next_seq = seq + 1;

        /* The leaf, then every node it completes (merkle._grow without the dict). */
        static const unsigned char zero = 0x00;
        unsigned char node[HASH];
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, &zero, 1);
        SHA256_Update(&ctx, computed, HASH);
        SHA256_Final(node, &ctx);
        memcpy(b->nodes + b->offsets[0] + HASH * written[0]++, node, HASH);
        int level = 0;
        for (uint64_t index = size; index & 1; index >>= 1) {
            node_hash(b->stack[--b->depth], node, node);
            level++;
            memcpy(b->nodes + b->offsets[level] + HASH * written[level]++, node, HASH);
        }
        memcpy(b->stack[b->depth++], node, HASH);
        size++;
    }
}

/* How many nodes each level gains while the tree grows from ``before`` to ``after`` leaves. */
static Py_ssize_t layout(uint64_t before, uint64_t after, Py_ssize_t *offsets) {
    Py_ssize_t total = 0;
    for (int level = 0; level <= MAX_LEVELS; level++) {
        offsets[level] = total * HASH;
        if (level < MAX_LEVELS) total += (Py_ssize_t)((after >> level) - (before >> level));
    }
    return total;
}

static Py_ssize_t count_records(const unsigned char *p, Py_ssize_t len) {
    const unsigned char *end = p + len, *fields[4];
    int32_t lengths[4];
    Py_ssize_t n = 0;
    while (tuple(&p, end, fields, lengths)) n++;
    return n;
}

static PyObject *recompute(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    long long next_seq;
    Py_buffer prev;
    PyObject *frontier;
    if (!PyArg_ParseTuple(args, "y*Ly*O!", &data, &next_seq, &prev, &PyTuple_Type, &frontier)) return NULL;
    PyObject *result = NULL;
    struct batch *b = PyMem_Calloc(1, sizeof *b);
    if (b == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (next_seq < 1 || prev.len != HASH) {
        PyErr_SetString(PyExc_ValueError, "next_seq must be >= 1 and prev 32 bytes");
        goto done;
    }
    uint64_t size = (uint64_t)(next_seq - 1);
    Py_ssize_t depth = PyTuple_GET_SIZE(frontier);
    if (depth != __builtin_popcountll(size)) {
        PyErr_Format(PyExc_ValueError, "a frontier at size %llu has %d nodes, not %zd",
                     (unsigned long long)size, __builtin_popcountll(size), depth);
        goto done;
    }
    for (Py_ssize_t i = 0; i < depth; i++) {
        PyObject *item = PyTuple_GET_ITEM(frontier, i);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) != HASH) {
            PyErr_SetString(PyExc_ValueError, "frontier nodes must be 32-byte bytes");
            goto done;
        }
        memcpy(b->stack[i], PyBytes_AS_STRING(item), HASH);
    }
    b->depth = (int)depth;
    b->data = data.buf, b->len = data.len, b->next_seq = next_seq;
    memcpy(b->prev, prev.buf, HASH);
    b->records = count_records(b->data, b->len);
    /* Room for every node the whole batch could complete; trimmed to what it did complete. */
    Py_ssize_t capacity = layout(size, size + (uint64_t)b->records, b->offsets);
    b->nodes = PyMem_Malloc(capacity * HASH + 1);
    if (b->nodes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    run(b);
    Py_END_ALLOW_THREADS

    uint64_t after = (uint64_t)(b->next_seq - 1);
    Py_ssize_t room[MAX_LEVELS + 1];
    layout(size, size + (uint64_t)b->records, room);
    Py_ssize_t used[MAX_LEVELS + 1];
    Py_ssize_t total = layout(size, after, used);
    PyObject *nodes = PyBytes_FromStringAndSize(NULL, total * HASH);
    if (nodes == NULL) goto done;
    for (int level = 0; level < MAX_LEVELS; level++) {
        Py_ssize_t n = used[level + 1] - used[level];
        if (n) memcpy(PyBytes_AS_STRING(nodes) + used[level], b->nodes + room[level], n);
    }
    PyObject *stack = PyTuple_New(b->depth);
    if (stack == NULL) {
        Py_DECREF(nodes);
        goto done;
    }
    for (int i = 0; i < b->depth; i++) {
        PyObject *item = PyBytes_FromStringAndSize((const char *)b->stack[i], HASH);
        if (item == NULL) {
            Py_DECREF(stack);
            Py_DECREF(nodes);
            goto done;
        }
        PyTuple_SET_ITEM(stack, i, item);
    }
    if (b->code == OK)
        result = Py_BuildValue("Ly#NNO", b->next_seq, b->prev, (Py_ssize_t)HASH, stack, nodes, Py_None);
    else
        result = Py_BuildValue("Ly#NN(iLL)", b->next_seq, b->prev, (Py_ssize_t)HASH, stack, nodes, b->code,
                               b->bad_seq, b->found);
done:
    if (b != NULL) PyMem_Free(b->nodes);
    PyMem_Free(b);
    PyBuffer_Release(&data);
    PyBuffer_Release(&prev);
    return result;
}

static PyMethodDef methods[] = {
    {"recompute", recompute, METH_VARARGS,
     "recompute(data, next_seq, prev, frontier) -> (next_seq, prev, frontier, nodes, problem)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_recompute", "The verifier's hot loop, compiled (see recompute.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__recompute(void) { return PyModule_Create(&module); }
